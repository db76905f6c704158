"""Per-workspace quotas: what each allows, the checks inside a write's transaction, and the
refusal (429 with Retry-After).

Two kinds. A windowed quota (activity bytes, uploads) counts into a fixed window's usage row,
upserted in the transaction of the write it counts; a total past the limit raises, and the
write and its charge roll back together. A level quota (bytes of uploads stored) is counted
under the workspace's quota lock after the write, so the total includes it. Each also has a
lock-free pre-check, for refusing before a request body is read.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from molecule import conf, metrics
from molecule.models import WorkspaceUsage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    name: str
    limit: Callable[[], int]
    # How the refusal names the limit: "at most {limit} {what}".
    what: str
    windowed: bool


PENDING_BYTES = Quota(
    "pending_bytes", conf.quota_pending_bytes, "bytes of uploads stored", windowed=False
)
ACTIVITY_BYTES = Quota(
    "activity_bytes", conf.quota_activity_bytes, "bytes of activity bodies", windowed=True
)
UPLOADS = Quota("uploads", conf.quota_uploads, "uploaded files", windowed=True)


class QuotaExceeded(Exception):
    """A write refused because the workspace reached ``quota``; nothing of it is stored."""

    def __init__(self, quota: Quota, limit: int, retry_after: float) -> None:
        self.quota = quota
        self.limit = limit
        self.window_seconds = int(conf.quota_window().total_seconds()) if quota.windowed else None
        # Whole seconds, at least one: what Retry-After can say.
        self.retry_after = max(1, math.ceil(retry_after))
        per = f" per {self.window_seconds} s" if quota.windowed else " per workspace"
        super().__init__(
            f"quota exceeded: at most {limit} {quota.what}{per}; retry after {self.retry_after} s"
        )

    def details(self) -> dict[str, object]:
        """The JSON body's fields beside "error"."""
        details: dict[str, object] = {"quota": self.quota.name, "limit": self.limit}
        if self.window_seconds is not None:
            details["window_seconds"] = self.window_seconds
        details["retry_after"] = self.retry_after
        return details


def _refuse(workspace_id: uuid.UUID, quota: Quota, limit: int, retry_after: float) -> None:
    metrics.quota_refusals.labels(quota.name).inc()
    logger.info("quota refused workspace=%s quota=%s limit=%d", workspace_id, quota.name, limit)
    raise QuotaExceeded(quota, limit, retry_after)


def quota_charge(*, workspace_id: uuid.UUID, quota: Quota, amount: int) -> None:
    """Count ``amount`` into this window, in the caller's transaction, after its write.

    Raise QuotaExceeded when the window's total passes the limit; the caller's transaction
    then rolls back, and the charge with it.
    """
    limit = quota.limit()
    if limit <= 0 or amount <= 0:
        return
    assert transaction.get_connection().in_atomic_block, "charge inside the write's transaction"
    usage = WorkspaceUsage.objects.charge(
        workspace_id, quota.name, amount, window=conf.quota_window()
    )
    if usage.amount > limit:
        _refuse(workspace_id, quota, limit, usage.seconds_left)


def quota_precheck(*, workspace_id: uuid.UUID, quota: Quota, amount: int) -> None:
    """Refuse at once what cannot fit in this window (read without a lock; the charge decides)."""
    limit = quota.limit()
    if limit <= 0:
        return
    usage = WorkspaceUsage.objects.current(workspace_id, quota.name, window=conf.quota_window())
    if usage.amount + amount > limit:
        _refuse(workspace_id, quota, limit, usage.seconds_left)


def quota_check_level(
    *,
    workspace_id: uuid.UUID,
    quota: Quota,
    level: Callable[[], int],
    retry_after: float,
    adding: int = 0,
    locked: bool = True,
) -> None:
    """Refuse when ``level()`` (plus ``adding``) is past the limit.

    ``locked``: inside the write's transaction and after the write, take the workspace's quota
    lock first, so the level counted includes every committed write and no concurrent one.
    Without it, a lock-free pre-check.
    """
    limit = quota.limit()
    if limit <= 0:
        return
    if locked:
        assert transaction.get_connection().in_atomic_block, "check inside the write's transaction"
        WorkspaceUsage.objects.lock_workspace(workspace_id)
    if level() + adding > limit:
        _refuse(workspace_id, quota, limit, retry_after)


def quota_windows_prune() -> int:
    """Delete the usage counters of ended windows; how many."""
    return WorkspaceUsage.objects.prune(window=conf.quota_window())
