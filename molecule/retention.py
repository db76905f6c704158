"""The activity-log retention sweep: its batch statement and its read-only preview."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db import DatabaseError, connections, models, router, transaction

from molecule.totals import ADD_TO_TOTALS

# Raw so that one round trip per batch deletes and counts, with no row data travelling back.
# The batch walks activity_logs_created_idx in created_at order from where the previous one
# stopped (created_from), so it never rescans the index entries of rows already deleted.
# SKIP LOCKED lets concurrent sweepers share the rows without waiting or counting one twice;
# the picked rows are locked, so their ctids stay put and the DELETE is a TID scan.
# The counted CTE adds the batch to metric_totals in the same statement: the counter commits
# with the delete, whichever process runs it.
ACTIVITY_SWEEP_BATCH_SQL = f"""
WITH picked AS (
    SELECT ctid FROM activity_logs
     WHERE created_at < now() - make_interval(secs => %(retention_seconds)s)
       AND created_at >= %(created_from)s
     ORDER BY created_at
     LIMIT %(batch_size)s
       FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM activity_logs
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM picked))
 RETURNING created_at
), tally AS (
    SELECT count(*) AS deleted, max(created_at) AS last_created_at FROM deleted
), increments (metric, label, n) AS (
    SELECT %(counter)s, 'deleted', deleted FROM tally
), counted AS ({ADD_TO_TOTALS})
SELECT deleted, last_created_at, (SELECT count(*) FROM picked) FROM tally
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The same predicate, counted without deleting: a range count on activity_logs_created_idx.
ACTIVITY_SWEEP_PREVIEW_SQL = """
SELECT count(*) FROM activity_logs
 WHERE created_at < now() - make_interval(secs => %(retention_seconds)s)
"""

_KEY_START = datetime(1, 1, 1, tzinfo=UTC)


class ActivitySweepResult(NamedTuple):
    deleted: int
    batches: int


class ActivitySweepError(Exception):
    """The activity sweep failed; ``partial`` holds what committed batches deleted."""

    def __init__(self, message: str, partial: ActivitySweepResult) -> None:
        super().__init__(message)
        self.partial = partial


class ActivityRetentionMixin:
    """For ActivityLogManager: the read/write pair of the retention sweep."""

    model: type[models.Model]

    def _retention_cursor(self):
        return connections[router.db_for_write(self.model)].cursor()

    def sweep_preview(self, retention: timedelta) -> int:
        """How many rows sweep(retention) would delete now."""
        with self._retention_cursor() as cursor:
            cursor.execute(ACTIVITY_SWEEP_PREVIEW_SQL, {"retention_seconds": _seconds(retention)})
            return cursor.fetchone()[0]

    def sweep(
        self,
        retention: timedelta,
        *,
        counter: str,
        batch_size: int,
        on_batch: Callable[[ActivitySweepResult], None] | None = None,
    ) -> ActivitySweepResult:
        """Delete rows created more than ``retention`` ago, in committed batches.

        Each batch adds its count to the ``counter`` row of metric_totals in its own
        statement. Negative retention counts as zero. Database errors are raised as
        ActivitySweepError carrying what the committed batches deleted.
        """
        db = router.db_for_write(self.model)
        params = {
            "retention_seconds": _seconds(retention),
            "created_from": _KEY_START,
            "batch_size": max(batch_size, 1),
            "counter": counter,
        }
        done = ActivitySweepResult(0, 0)
        try:
            while True:
                with transaction.atomic(using=db), self._retention_cursor() as cursor:
                    cursor.execute(ACTIVITY_SWEEP_BATCH_SQL, params)
                    deleted, last_created_at, picked = cursor.fetchone()
                done = ActivitySweepResult(done.deleted + deleted, done.batches + 1)
                if on_batch is not None:
                    on_batch(done)
                if picked < params["batch_size"] or last_created_at is None:
                    return done
                params["created_from"] = last_created_at
        except DatabaseError as exc:
            raise ActivitySweepError(f"activity_logs sweep failed: {exc}", done) from exc


def _seconds(retention: timedelta) -> float:
    return max(retention.total_seconds(), 0.0)
