"""Workspace registration, heartbeats and activity (the API's writes), and activity retention."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import DatabaseError, IntegrityError, transaction
from django.template.defaultfilters import pluralize

from molecule import conf, metrics
from molecule.durations import format_duration
from molecule.errors import first_line
from molecule.models import ActivityLog, MetricTotal, Workspace
from molecule.retention import ActivitySweepError, ActivitySweepResult
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
    return ActivityLog.objects.create(
        workspace_id=workspace_id, activity_type=activity_type, **columns
    )


@dataclass(frozen=True)
class ActivitySweepReport:
    deleted: int
    batches: int
    retention: timedelta
    # Time spent in the sweep statements themselves.
    duration_ms: float
    dry_run: bool

    def job_result(self) -> dict[str, Any]:
        return {"deleted": self.deleted}


def activity_sweep_preview(*, retention: timedelta | None = None) -> ActivitySweepReport:
    """Count the activity rows past retention; delete nothing."""
    kept = conf.activity_retention() if retention is None else retention
    started = time.perf_counter()
    try:
        count = ActivityLog.objects.sweep_preview(kept)
    except DatabaseError as exc:
        logger.error("activity sweep (dry run) failed: %s", first_line(exc))
        raise ActivitySweepError(
            f"activity_logs sweep (dry run) failed: {first_line(exc)}", ActivitySweepResult(0, 0)
        ) from exc
    return ActivitySweepReport(count, 0, kept, (time.perf_counter() - started) * 1000, True)


def activity_sweep(*, retention: timedelta | None = None) -> ActivitySweepReport:
    """Delete activity rows older than the retention, in batches; log one line.

    Each batch counts itself in molecule_activity_logs_swept_total as it commits. A failure
    adds the error outcome, is logged and raised as ActivitySweepError.
    """
    kept = conf.activity_retention() if retention is None else retention
    started = time.perf_counter()
    try:
        result = ActivityLog.objects.sweep(
            kept,
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
    logger.info(
        "activity sweep: %d row%s older than %s deleted in %d batch%s, %.1f ms",
        result.deleted,
        pluralize(result.deleted),
        format_duration(kept),
        result.batches,
        pluralize(result.batches, "es"),
        duration_ms,
    )
    return ActivitySweepReport(result.deleted, result.batches, kept, duration_ms, False)


def activity_count_error() -> None:
    """Count a failed run in its own statement (the failed batch rolled back its count)."""
    try:
        MetricTotal.objects.add(metrics.activity_logs_swept.name, label="error")
    except DatabaseError as exc:
        # One line: a command that failed because the database is away must print one line.
        logger.error("could not count the failed activity sweep: %s", first_line(exc))
