"""The sweep: its batches, the outbox drains around them, its metrics and its one log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError
from django.template.defaultfilters import pluralize

from molecule.durations import format_duration
from molecule.errors import first_line
from molecule.models import MetricTotal
from pending_uploads import conf, metrics
from pending_uploads.managers import DrainResult, SweepError, SweepResult
from pending_uploads.models import PendingUpload
from pending_uploads.services.objects import NO_OBJECTS, uploads_objects_drain

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    result: SweepResult
    # Time spent in the sweep statements themselves.
    duration_ms: float
    dry_run: bool
    # Time spent refreshing the backlog gauges afterwards (None for a dry run).
    gauges_ms: float | None = None
    # Bucket objects deleted from the outbox (before and after the batches), and the time
    # that took (None for a dry run).
    objects: DrainResult = NO_OBJECTS
    drain_ms: float | None = None

    def job_result(self) -> dict[str, Any]:
        # The job's result keeps upstream's two counts; objects are in the metrics and the log.
        return {"acked": self.result.acked, "expired": self.result.expired}


def uploads_sweep(
    *,
    ack_retention: timedelta | None = None,
    dry_run: bool = False,
    on_batch: Callable[[SweepResult, int], None] | None = None,
) -> SweepReport:
    """Run the sweep, record its duration and the backlog gauges, log one line.

    Each batch counts its own deletions in metric_totals as it commits, so a failure midway
    loses no count. A failure adds the error outcome, is logged and raised as SweepError.
    """
    retention = conf.ack_retention() if ack_retention is None else ack_retention
    objects = NO_OBJECTS
    drain_seconds = 0.0
    try:
        if not dry_run:
            # Queued deletes of earlier sweeps first: one that died after its commit left them.
            objects, drain_seconds = _drain_timed()
        started = time.perf_counter()
        result = PendingUpload.objects.sweep(
            retention,
            batch_size=conf.sweep_batch_size(),
            batch_bytes=conf.sweep_batch_bytes(),
            dry_run=dry_run,
            on_batch=on_batch,
        )
        duration = time.perf_counter() - started
        if not dry_run:
            more, seconds = _drain_timed()
            objects, drain_seconds = objects + more, drain_seconds + seconds
    except Exception as exc:
        partial = exc.partial if isinstance(exc, SweepError) else SweepResult(0, 0)
        if not dry_run:
            uploads_count_error()
        # One line here; the scheduled job adds the traceback (a command must print one line).
        logger.error(
            "pending uploads sweep failed after %d acked, %d expired deleted: %s",
            partial.acked,
            partial.expired,
            first_line(exc),
        )
        if isinstance(exc, SweepError):
            raise
        raise SweepError(f"pending_uploads sweep failed: {first_line(exc)}", partial) from exc
    gauges_ms = None
    if not dry_run:
        gauges_ms = uploads_record_run(duration)
    logger.info(
        "pending uploads sweep%s: %d acked, %d expired in %.1f ms (retention %s)%s",
        " (dry run)" if dry_run else "",
        result.acked,
        result.expired,
        duration * 1000,
        format_duration(retention),
        f"; {objects.deleted} object{pluralize(objects.deleted)} deleted in "
        f"{drain_seconds * 1000:.1f} ms"
        if objects != NO_OBJECTS
        else "",
    )
    drain_ms = None if dry_run else drain_seconds * 1000
    return SweepReport(result, duration * 1000, dry_run, gauges_ms, objects, drain_ms)


def _drain_timed() -> tuple[DrainResult, float]:
    started = time.perf_counter()
    drained = uploads_objects_drain()
    return drained, time.perf_counter() - started


def uploads_count_error() -> None:
    """Add 1 to the error outcome in its own statement; a database that is away loses it.

    The failed batch rolled back with its count, so the error is counted after it. When the
    database itself is unreachable this cannot be stored either: it is logged, and the stale
    last-sweep timestamp raises PendingUploadsSweepFailing instead.
    """
    try:
        MetricTotal.objects.add(metrics.uploads_swept.name, label="error")
    except DatabaseError as exc:
        # One line: a command that failed because the database is away must print one line.
        logger.error("could not count the failed pending-uploads sweep: %s", first_line(exc))


def uploads_record_run(duration: float) -> float | None:
    """Store a successful run's duration, timestamp and backlog gauges.

    Returns the milliseconds the backlog query took, or None when recording failed (the
    deletions are counted already; a stale gauge must not fail the sweep).
    """
    started = time.perf_counter()
    try:
        backlog = PendingUpload.objects.backlog()
        gauges_ms = (time.perf_counter() - started) * 1000
        values: dict[tuple[str, str], float | None] = {
            (metrics.backlog_rows.name, state): getattr(backlog, state)
            for state in metrics.BACKLOG_STATES
        }
        values[(metrics.oldest_unacked_age.name, "")] = backlog.oldest_unacked_age_seconds
        values[(metrics.object_deletions_pending.name, "")] = backlog.objects_pending
        values[(metrics.last_sweep_timestamp.name, "")] = None  # the database's now()
        MetricTotal.objects.gauges_set(values)
        MetricTotal.objects.observe(
            metrics.sweep_duration.name, metrics.SWEEP_DURATION_BUCKETS, duration
        )
    except DatabaseError:
        logger.exception("could not record the pending-uploads sweep's gauges")
        return None
    return gauges_ms
