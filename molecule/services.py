"""Workspace registration, heartbeats and activity (the API's writes), and activity retention."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import DatabaseError, IntegrityError, transaction

from molecule import conf, metrics
from molecule.errors import first_line
from molecule.models import ActivityLog, InboxDeliveryState, MetricTotal, Workspace
from molecule.retention import ActivityHorizons, ActivitySweepError, ActivitySweepResult
from molecule.tokens import token_generate, token_hash, token_matches

logger = logging.getLogger(__name__)


class WorkspaceAuthError(Exception):
    """Re-registration without the workspace's own bearer token, or of a removed workspace."""


class WorkspaceRemovedError(WorkspaceAuthError):
    """Re-registration, with the right token, of a workspace that was removed: it stays removed."""


class Registration(NamedTuple):
    workspace: Workspace
    # The plain token, present only on first registration.
    auth_token: str | None


def workspace_register(
    *,
    workspace_id: uuid.UUID,
    name: str,
    delivery_mode: str,
    url: str | None,
    bearer_token: str | None,
) -> Registration:
    """Create the workspace and mint its token, or update it when the caller proves ownership."""
    fields = {"name": name, "delivery_mode": delivery_mode, "url": url}
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().filter(pk=workspace_id).first()
        if workspace is None:
            token = token_generate()
            try:
                with transaction.atomic():
                    workspace = Workspace.objects.create(
                        id=workspace_id, token_hash=token_hash(token), **fields
                    )
            except IntegrityError:
                # A concurrent first registration won; this caller holds no token for it.
                raise WorkspaceAuthError from None
            logger.info(
                "workspace registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode
            )
            return Registration(workspace, token)
        if bearer_token is None or not token_matches(bearer_token, workspace.token_hash):
            raise WorkspaceAuthError
        if workspace.status == Workspace.Status.REMOVED:
            # Removed is terminal, as upstream's guard makes it: a late register never revives.
            raise WorkspaceRemovedError
        Workspace.objects.filter(pk=workspace_id).update(
            **fields, status=Workspace.Status.ONLINE, updated_at=Now()
        )
        workspace.refresh_from_db()
    logger.info("workspace re-registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode)
    return Registration(workspace, None)


def workspace_heartbeat(*, workspace: Workspace, active_tasks: int, current_task: str) -> None:
    # exclude(): a workspace removed since it authenticated stays removed.
    Workspace.objects.filter(pk=workspace.pk).exclude(status=Workspace.Status.REMOVED).update(
        active_tasks=active_tasks,
        current_task=current_task,
        status=Workspace.Status.ONLINE,
        updated_at=Now(),
    )


def activity_append(*, workspace_id: uuid.UUID, activity_type: str, **columns: Any) -> ActivityLog:
    """Append one activity row; ``columns`` are ActivityLog's optional fields (method, summary,
    source_id, request_body, ...). The model holds their defaults; an unknown name is a TypeError.
    """
    return activity_append_many(
        workspace_id=workspace_id, rows=[{"activity_type": activity_type, **columns}]
    )[0]


def activity_append_many(
    *, workspace_id: uuid.UUID, rows: Sequence[dict[str, Any]]
) -> list[ActivityLog]:
    """Append one workspace's rows in one INSERT, in the order given.

    Inside a larger transaction, call it last: see ActivityLog on the feed's order.
    """
    return ActivityLog.objects.bulk_create(
        ActivityLog(workspace_id=workspace_id, **columns) for columns in rows
    )


def inbox_ack(*, workspace_id: uuid.UUID, acked_seq: int) -> int:
    """Record that the workspace's poller holds every feed row up to ``acked_seq``.

    The mark only moves forward; the stored value is returned. Acknowledged rows become
    eligible for the retention sweep after ACTIVITY_SOFT_RETENTION.
    """
    return InboxDeliveryState.objects.ack(workspace_id, acked_seq)


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
        f"retention {int(horizons.clamped_from.total_seconds())}s is below the soft retention "
        f"{int(horizons.soft.total_seconds())}s: both are {int(horizons.soft.total_seconds())}s"
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
            "activity sweep failed after %d rows deleted: %s",
            exc.partial.deleted,
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
        "activity sweep: %d rows acknowledged and older than %ss, or older than %ss, "
        "deleted in %d batches, %.1f ms%s",
        result.deleted,
        int(horizons.soft.total_seconds()),
        int(horizons.hard.total_seconds()),
        result.batches,
        duration_ms,
        f" ({note})" if note else "",
    )
    return ActivitySweepReport(result.deleted, result.batches, horizons, duration_ms, False)


def activity_count_error() -> None:
    """Count a failed run in its own statement (the failed batch rolled back its count)."""
    try:
        MetricTotal.objects.add(metrics.activity_logs_swept.name, label="error")
    except DatabaseError as exc:
        # One line: a command that failed because the database is away must print one line.
        logger.error("could not count the failed activity sweep: %s", first_line(exc))
