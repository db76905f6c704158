"""Workspace registration, heartbeats and activity (the API's writes), and activity retention."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import DatabaseError, IntegrityError, transaction

from molecule import conf, metrics, quotas
from molecule.errors import first_line
from molecule.jobs import failure_count
from molecule.models import ActivityLog, MetricTotal, Workspace
from molecule.retention import ActivitySweepError, ActivitySweepResult
from molecule.tokens import token_generate, token_hash

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
        workspace = (
            Workspace.objects.with_token_state().select_for_update().filter(pk=workspace_id).first()
        )
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
        owner = (
            None if bearer_token is None else Workspace.objects.token_owner(workspace, bearer_token)
        )
        if owner is None:
            raise WorkspaceAuthError
        if workspace.status == Workspace.Status.REMOVED:
            # Removed is terminal, as upstream's guard makes it: a late register never revives.
            raise WorkspaceRemovedError
        if owner == "current" and workspace.previous_token_hash is not None:
            Workspace.objects.forget_previous_token(workspace)
        Workspace.objects.filter(pk=workspace_id).update(
            **fields, status=Workspace.Status.ONLINE, updated_at=Now()
        )
        workspace.refresh_from_db()
    logger.info("workspace re-registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode)
    return Registration(workspace, None)


class TokenRotationRefused(Exception):
    """Only the workspace's own token rotates it; the operator removes a workspace instead."""


class TokenRotationRaced(Exception):
    """A concurrent rotation or removal changed the workspace first; nothing was rotated."""


class TokenRotation(NamedTuple):
    # The new plain token: returned once, never stored or logged.
    auth_token: str
    # Until when the token it replaced still works, unless the new one is used first.
    previous_expires_at: datetime


def workspace_token_rotate(*, workspace: Workspace) -> TokenRotation:
    """Give the workspace a new token; the old one keeps working until the new one is first
    used or TOKEN_ROTATION_OVERLAP ends, so a lost answer cannot lock the workspace out."""
    if workspace.by_admin_token:
        raise TokenRotationRefused
    token = token_generate()
    expires = Workspace.objects.rotate_token(
        workspace, token_hash(token), overlap=conf.token_rotation_overlap()
    )
    if expires is None:
        raise TokenRotationRaced
    logger.info(
        "workspace token rotated id=%s (with the %s token); the old one works until %s",
        workspace.id,
        "previous" if workspace.by_previous_token else "current",
        expires.isoformat(),
    )
    return TokenRotation(token, expires)


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


def activity_report(
    *, workspace_id: uuid.UUID, body_bytes: int, activity_type: str, **columns: Any
) -> ActivityLog:
    """Append a row a client reported, charging its ``body_bytes`` to the activity_bytes quota
    in the same transaction: QuotaExceeded leaves nothing stored."""
    with transaction.atomic():
        row = activity_append(workspace_id=workspace_id, activity_type=activity_type, **columns)
        quotas.quota_charge(
            workspace_id=workspace_id, quota=quotas.ACTIVITY_BYTES, amount=body_bytes
        )
    return row


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
    logger.info(
        "activity sweep: %d rows older than %ss deleted in %d batches, %.1f ms",
        result.deleted,
        int(kept.total_seconds()),
        result.batches,
        duration_ms,
    )
    return ActivitySweepReport(result.deleted, result.batches, kept, duration_ms, False)


def activity_count_error() -> None:
    """Count a failed run in its own statement (the failed batch rolled back its count)."""
    failure_count(metrics.activity_logs_swept.name, "error", "activity sweep")
