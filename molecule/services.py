"""Workspace registration, heartbeats and activity (the API's writes), and activity retention."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import DatabaseError, IntegrityError, transaction
from django.template.defaultfilters import pluralize

from molecule import conf, metrics, quotas
from molecule.addresses import url_check
from molecule.durations import format_duration
from molecule.errors import first_line
from molecule.jobs import failure_count
from molecule.models import ActivityLog, InboxDeliveryState, MetricTotal, Workspace
from molecule.retention import ActivityHorizons, ActivitySweepError, ActivitySweepResult
from molecule.sealing import seal, unseal
from molecule.tokens import token_generate, token_hash

logger = logging.getLogger(__name__)


class WorkspaceAuthError(Exception):
    """Re-registration without the workspace's own bearer token, or of a removed workspace."""


class WorkspaceRemovedError(WorkspaceAuthError):
    """Re-registration, with the right token, of a workspace that was removed: it stays removed."""


class PushUrlMissing(Exception):
    def __init__(self) -> None:
        super().__init__("url is required for push-mode workspaces")


@dataclass(frozen=True)
class Registration:
    workspace: Workspace
    # The plain token, present only on first registration; never in a repr (or a log line).
    auth_token: str | None = field(repr=False)
    # What the platform presents to the workspace on a forward; in every answer, as upstream.
    platform_inbound_secret: str = field(repr=False)


def workspace_register(
    *,
    workspace_id: uuid.UUID,
    name: str,
    delivery_mode: str,
    url: str | None,
    bearer_token: str | None,
) -> Registration:
    """Create the workspace and mint its token, or update it when the caller proves ownership.

    A push-mode workspace needs a URL the address guard allows (PushUrlMissing,
    AddressRefused). Every registration returns the platform_inbound_secret, minted on the
    first one and again whenever the stored one is missing or no key opens it.
    """
    existing = Workspace.objects.with_token_state().filter(pk=workspace_id).first()
    if existing is not None:
        # Ownership first, as upstream checks it: a stranger learns nothing about the URL rules.
        _owner_check(existing, bearer_token)
    if delivery_mode == Workspace.DeliveryMode.PUSH:
        if not url:
            raise PushUrlMissing
        # Outside the row lock, which heartbeats wait on: a lookup can take seconds.
        url_check(url)
    fields = {"name": name, "delivery_mode": delivery_mode, "url": url}
    with transaction.atomic():
        workspace = (
            Workspace.objects.with_token_state().select_for_update().filter(pk=workspace_id).first()
        )
        if workspace is None:
            token = token_generate()
            secret = token_generate()
            try:
                with transaction.atomic():
                    workspace = Workspace.objects.create(
                        id=workspace_id,
                        token_hash=token_hash(token),
                        platform_inbound_secret_sealed=seal(secret),
                        **fields,
                    )
            except IntegrityError:
                # A concurrent first registration won; this caller holds no token for it.
                raise WorkspaceAuthError from None
            logger.info(
                "workspace registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode
            )
            return Registration(workspace, token, secret)
        _owner_check(workspace, bearer_token)
        secret = inbound_secret_open(workspace)
        if secret is None:
            secret = token_generate()
            _log_minted(workspace_id, workspace.platform_inbound_secret_sealed)
        Workspace.objects.filter(pk=workspace_id).update(
            **fields,
            status=Workspace.Status.ONLINE,
            updated_at=Now(),
            # Sealed afresh with the current key: a secret sealed with a key that has since
            # moved to SECRET_KEY_FALLBACKS no longer depends on it.
            platform_inbound_secret_sealed=seal(secret),
        )
        workspace.refresh_from_db()
    logger.info("workspace re-registered id=%s name=%s mode=%s", workspace_id, name, delivery_mode)
    return Registration(workspace, None, secret)


def _owner_check(workspace: Workspace, bearer_token: str | None) -> None:
    """Raise unless ``bearer_token`` is one of the workspace's tokens (the previous one within a
    rotation's overlap) and the workspace is not removed; the current one ends the overlap.
    ``workspace`` comes from Workspace.objects.with_token_state()."""
    owner = None if bearer_token is None else Workspace.objects.token_owner(workspace, bearer_token)
    if owner is None:
        raise WorkspaceAuthError
    if workspace.status == Workspace.Status.REMOVED:
        # Removed is terminal, as upstream's guard makes it: a late register never revives.
        raise WorkspaceRemovedError
    if owner == "current" and workspace.previous_token_hash is not None:
        Workspace.objects.forget_previous_token(workspace)


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


def workspace_heartbeat(
    *, workspace: Workspace, active_tasks: int, current_task: str
) -> str | None:
    """Record the beat; return the platform_inbound_secret, minting one if none is usable.

    Upstream hands the secret down on every beat, so a workspace whose secret was just
    minted here or by a rotation learns it without restarting. None if the workspace was
    removed meanwhile.
    """
    # exclude(): a workspace removed since it authenticated stays removed.
    Workspace.objects.filter(pk=workspace.pk).exclude(status=Workspace.Status.REMOVED).update(
        active_tasks=active_tasks,
        current_task=current_task,
        status=Workspace.Status.ONLINE,
        updated_at=Now(),
    )
    return inbound_secret_ensure(workspace)


def inbound_secret_open(workspace: Workspace) -> str | None:
    """The workspace's platform_inbound_secret, or None when there is none or no key opens it."""
    sealed = workspace.platform_inbound_secret_sealed
    if sealed is None:
        return None
    secret = unseal(sealed)
    if secret is None:
        logger.warning(
            "platform_inbound_secret of workspace %s opens with no key of SECRET_KEY or "
            "SECRET_KEY_FALLBACKS; it counts as missing until a new one is minted",
            workspace.pk,
        )
    return secret


def inbound_secret_ensure(workspace: Workspace) -> str | None:
    """The usable secret, or a new one stored in its place; None if the workspace is removed."""
    secret = inbound_secret_open(workspace)
    if secret is not None:
        return secret
    minted = token_generate()
    expected = workspace.platform_inbound_secret_sealed
    sealed = seal(minted)
    if Workspace.objects.inbound_secret_replace(workspace.pk, expected=expected, sealed=sealed):
        workspace.platform_inbound_secret_sealed = sealed
        _log_minted(workspace.pk, expected)
        return minted
    # Another request stored one first (or the workspace was removed): present that one.
    workspace.refresh_from_db(fields=["platform_inbound_secret_sealed", "status"])
    if workspace.status == Workspace.Status.REMOVED:
        return None
    return inbound_secret_open(workspace)


def _log_minted(workspace_id: uuid.UUID, previous: str | None) -> None:
    # The id and why, never the value (upstream logs its lazy heal the same way).
    logger.info(
        "platform_inbound_secret minted for workspace %s (%s)",
        workspace_id,
        "none was stored" if previous is None else "the stored one could not be opened",
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


def activity_report(
    *, workspace_id: uuid.UUID, body_bytes: int, activity_type: str, **columns: Any
) -> ActivityLog:
    """Append a row a client reported, charging its ``body_bytes`` to the activity_bytes quota
    in the same transaction: QuotaExceeded leaves nothing stored. The charge comes first, so the
    row is the transaction's last write (the feed's lock is held from it to the commit)."""
    with transaction.atomic():
        quotas.quota_charge(
            workspace_id=workspace_id, quota=quotas.ACTIVITY_BYTES, amount=body_bytes
        )
        return activity_append(workspace_id=workspace_id, activity_type=activity_type, **columns)


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
