"""Activity retention: the sweep's horizons, its preview, the sweep itself and its failures."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError
from django.template.defaultfilters import pluralize

from molecule import conf, metrics
from molecule.durations import format_duration
from molecule.errors import first_line
from molecule.jobs import failure_count
from molecule.models import ActivityLog, MetricTotal
from molecule.retention import ActivityHorizons, ActivitySweepError, ActivitySweepResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivitySweepReport:
    deleted: int
    batches: int
    horizons: ActivityHorizons
    # Time spent in the sweep statements themselves.
    duration_ms: float
    dry_run: bool

    def job_result(self) -> dict[str, Any]:
        return {"deleted": self.deleted}


def activity_horizons(
    *, retention: timedelta | None = None, soft_retention: timedelta | None = None
) -> ActivityHorizons:
    """The sweep's horizons: the arguments, else ACTIVITY_RETENTION (hard) and
    ACTIVITY_SOFT_RETENTION; a hard horizon below the soft one is raised to it."""
    return ActivityHorizons.of(
        soft=conf.activity_soft_retention() if soft_retention is None else soft_retention,
        hard=conf.activity_retention() if retention is None else retention,
    )


def activity_horizons_clamp_note(horizons: ActivityHorizons) -> str:
    """'' or, when the hard horizon was raised, the sentence that says so (log and command)."""
    if horizons.clamped_from is None:
        return ""
    return (
        f"retention {format_duration(horizons.clamped_from)} is below the soft retention "
        f"{format_duration(horizons.soft)}: both are {format_duration(horizons.soft)}"
    )


def activity_sweep_preview(
    *, retention: timedelta | None = None, soft_retention: timedelta | None = None
) -> ActivitySweepReport:
    """Count the activity rows the sweep would delete now; delete nothing."""
    horizons = activity_horizons(retention=retention, soft_retention=soft_retention)
    started = time.perf_counter()
    try:
        count = ActivityLog.objects.sweep_preview(horizons)
    except DatabaseError as exc:
        logger.error("activity sweep (dry run) failed: %s", first_line(exc))
        raise ActivitySweepError(
            f"activity_logs sweep (dry run) failed: {first_line(exc)}", ActivitySweepResult(0, 0)
        ) from exc
    return ActivitySweepReport(count, 0, horizons, (time.perf_counter() - started) * 1000, True)


def activity_sweep(
    *, retention: timedelta | None = None, soft_retention: timedelta | None = None
) -> ActivitySweepReport:
    """Delete the activity rows past the horizons, in batches; log one line.

    A row goes once it is past the soft horizon and acknowledged, or past the hard one.
    Each batch counts itself in molecule_activity_logs_swept_total as it commits. A failure
    adds the error outcome, is logged and raised as ActivitySweepError.
    """
    horizons = activity_horizons(retention=retention, soft_retention=soft_retention)
    started = time.perf_counter()
    try:
        result = ActivityLog.objects.sweep(
            horizons,
            counter=metrics.activity_logs_swept.name,
            batch_size=conf.activity_sweep_batch_size(),
        )
    except ActivitySweepError as exc:
        activity_count_error()
        logger.error(
            "activity sweep failed after %d row%s deleted: %s",
            exc.partial.deleted,
            pluralize(exc.partial.deleted),
            first_line(exc),
        )
        raise
    duration_ms = (time.perf_counter() - started) * 1000
    try:
        MetricTotal.objects.gauges_set({(metrics.activity_last_sweep_timestamp.name, ""): None})
    except DatabaseError:
        logger.exception("could not record the activity sweep's timestamp")
    note = activity_horizons_clamp_note(horizons)
    # One line per run; a warning when the configured horizons contradict each other.
    logger.log(
        logging.WARNING if note else logging.INFO,
        "activity sweep: %d row%s acknowledged and older than %s, or older than %s, "
        "deleted in %d batch%s, %.1f ms%s",
        result.deleted,
        pluralize(result.deleted),
        format_duration(horizons.soft),
        format_duration(horizons.hard),
        result.batches,
        pluralize(result.batches, "es"),
        duration_ms,
        f" ({note})" if note else "",
    )
    return ActivitySweepReport(result.deleted, result.batches, horizons, duration_ms, False)


def activity_count_error() -> None:
    """Count a failed run in its own statement (the failed batch rolled back its count)."""
    failure_count(metrics.activity_logs_swept.name, "error", "activity sweep")
