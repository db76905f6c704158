"""Queries on workspace_usage: the fixed-window counters behind the per-workspace quotas."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import NamedTuple

from django.db import connections, models, router

# Windows are fixed and aligned to this origin: every process and host, by the database clock,
# puts a write in the same window.
_WINDOW = """date_bin(make_interval(secs => %(window_seconds)s), now(), TIMESTAMPTZ '2000-01-01')"""
_SECONDS_LEFT = f"""
EXTRACT(EPOCH FROM {_WINDOW} + make_interval(secs => %(window_seconds)s) - now())::float8
"""

# Raw for the upsert: one round trip adds to this window's counter (created on first use) and
# returns the new total with the seconds left in the window. An ON CONFLICT update waits for a
# concurrent charge of the same counter to commit and then adds to its total, and the row stays
# locked until this transaction ends: charges of one workspace queue here, so a check against
# the total returned is exact, and a refused charge rolls back with the write it charged for.
USAGE_CHARGE_SQL = f"""
INSERT INTO workspace_usage AS u (workspace_id, quota, window_start, amount)
VALUES (%(workspace_id)s, %(quota)s, {_WINDOW}, %(amount)s)
    ON CONFLICT (workspace_id, quota, window_start)
    DO UPDATE SET amount = u.amount + EXCLUDED.amount
RETURNING amount, {_SECONDS_LEFT}
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The same counter, read without a lock: the cheap refusal before a body is read.
USAGE_READ_SQL = f"""
SELECT coalesce((SELECT amount FROM workspace_usage
                  WHERE workspace_id = %(workspace_id)s AND quota = %(quota)s
                    AND window_start = {_WINDOW}), 0),
       {_SECONDS_LEFT}
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# Raw for the advisory lock, which the ORM has no word for. Held until the transaction ends, it
# queues the writers of one workspace's stored bytes, so a total counted after taking it sees
# every committed write and no concurrent one can add to it unseen.
WORKSPACE_LOCK_SQL = (
    "SELECT pg_advisory_xact_lock(%(lock_class)s, hashtext(%(workspace_id)s::text))"
)
# An arbitrary int4 of our own ('QUOT'), so the key cannot collide with another lock's.
QUOTA_LOCK_CLASS = 0x51554F54

# Windows that have ended; a single statement, as there are at most a few rows per active
# workspace and window.
USAGE_PRUNE_SQL = """
DELETE FROM workspace_usage WHERE window_start < now() - make_interval(secs => %(window_seconds)s)
"""


class Usage(NamedTuple):
    amount: int
    # Until the window ends, by the database clock.
    seconds_left: float


class WorkspaceUsageManager(models.Manager):
    def _cursor(self):
        return connections[router.db_for_write(self.model)].cursor()

    def charge(
        self, workspace_id: uuid.UUID, quota: str, amount: int, *, window: timedelta
    ) -> Usage:
        """Add ``amount`` to this window's counter; its new total. Call inside a transaction."""
        with self._cursor() as cursor:
            cursor.execute(
                USAGE_CHARGE_SQL,
                {
                    "workspace_id": workspace_id,
                    "quota": quota,
                    "amount": amount,
                    "window_seconds": window.total_seconds(),
                },
            )
            return Usage(*cursor.fetchone())

    def current(self, workspace_id: uuid.UUID, quota: str, *, window: timedelta) -> Usage:
        """This window's total so far (0 before the first charge), read without a lock."""
        with self._cursor() as cursor:
            cursor.execute(
                USAGE_READ_SQL,
                {
                    "workspace_id": workspace_id,
                    "quota": quota,
                    "window_seconds": window.total_seconds(),
                },
            )
            return Usage(*cursor.fetchone())

    def lock_workspace(self, workspace_id: uuid.UUID) -> None:
        """Take the workspace's quota lock until the transaction ends."""
        with self._cursor() as cursor:
            cursor.execute(
                WORKSPACE_LOCK_SQL, {"lock_class": QUOTA_LOCK_CLASS, "workspace_id": workspace_id}
            )

    def prune(self, *, window: timedelta) -> int:
        """Delete the counters of windows that have ended; how many."""
        with self._cursor() as cursor:
            cursor.execute(USAGE_PRUNE_SQL, {"window_seconds": window.total_seconds()})
            return cursor.rowcount
