"""The activity-log retention sweep, ack-aware: its batch statement and its read-only preview."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db import DatabaseError, connections, models, router, transaction

from molecule.totals import ADD_TO_TOTALS

# A row may go once it is past the soft horizon and its workspace's poller has acknowledged a
# later row, or once it is past the hard horizon whatever was acknowledged. The acknowledged
# mark itself (id = last_acked_seq) stays until the hard horizon: it is the since_id the
# poller resumes from, and a pruned cursor would answer 410 and send the runtime back to its
# ten-minute backlog, past every row it had not drained. No delivery state counts as nothing
# acknowledged. A hard horizon below the soft one acts as the soft one: every row past it is
# past both. The batch and the preview share it, so --dry-run counts what a sweep deletes.
ACTIVITY_SWEEP_ELIGIBLE = """
      activity_logs.created_at < now() - make_interval(secs => %(soft_seconds)s)
  AND (activity_logs.created_at < now() - make_interval(secs => %(hard_seconds)s)
       OR activity_logs.id < COALESCE(
            (SELECT s.last_acked_seq FROM inbox_delivery_state AS s
              WHERE s.workspace_id = activity_logs.workspace_id), 0))
"""

# Raw so that one round trip per batch deletes and counts, with no row data travelling back.
# The batch walks activity_logs_created_idx in created_at order from where the previous one
# stopped (created_after), so it never rescans the index entries of rows already passed. It
# reads a window of the next batch_size entries past the soft horizon, acknowledged or not,
# and deletes the eligible rows up to the window's last created_at (ties included): however
# many unacknowledged rows lie between the horizons, no statement reads more than a window.
# SKIP LOCKED lets concurrent sweepers share the rows without waiting or counting one twice;
# the picked rows are locked, so their ctids stay put and the DELETE is a TID scan.
# The counted CTE adds the batch to metric_totals in the same statement: the counter commits
# with the delete, whichever process runs it.
ACTIVITY_SWEEP_BATCH_SQL = f"""
WITH window_rows AS (
    SELECT created_at FROM activity_logs
     WHERE created_at > %(created_after)s
       AND created_at < now() - make_interval(secs => %(soft_seconds)s)
     ORDER BY created_at
     LIMIT %(batch_size)s
), window_end AS (
    SELECT max(created_at) AS upto, count(*) AS scanned FROM window_rows
), picked AS (
    SELECT ctid FROM activity_logs
     WHERE activity_logs.created_at > %(created_after)s
       AND activity_logs.created_at <= (SELECT upto FROM window_end)
       AND {ACTIVITY_SWEEP_ELIGIBLE}
       FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM activity_logs
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM picked))
 RETURNING 1
), tally AS (
    SELECT count(*) AS deleted FROM deleted
), increments (metric, label, n) AS (
    SELECT %(counter)s, 'deleted', deleted FROM tally
), counted AS ({ADD_TO_TOTALS})
SELECT tally.deleted, window_end.upto, window_end.scanned FROM tally, window_end
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The same predicate, counted without deleting.
ACTIVITY_SWEEP_PREVIEW_SQL = f"""
SELECT count(*) FROM activity_logs WHERE {ACTIVITY_SWEEP_ELIGIBLE}
"""  # noqa: S608 - composed of constants; every value is a bound parameter

_KEY_START = datetime(1, 1, 1, tzinfo=UTC)


class ActivitySweepResult(NamedTuple):
    deleted: int
    batches: int


class ActivityHorizons(NamedTuple):
    """How long activity rows are kept: acknowledged ones ``soft``, every one ``hard``."""

    soft: timedelta
    hard: timedelta
    # The hard horizon asked for, when it was below the soft one and was raised to it.
    clamped_from: timedelta | None = None

    @classmethod
    def of(cls, *, soft: timedelta, hard: timedelta) -> ActivityHorizons:
        """Both horizons, the hard one raised to the soft one when it was below (upstream's
        clamp); negative durations count as zero."""
        soft, hard = max(soft, timedelta(0)), max(hard, timedelta(0))
        if hard < soft:
            return cls(soft, soft, hard)
        return cls(soft, hard)

    def params(self) -> dict[str, float]:
        return {
            "soft_seconds": self.soft.total_seconds(),
            "hard_seconds": self.hard.total_seconds(),
        }


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

    def sweep_preview(self, horizons: ActivityHorizons) -> int:
        """How many rows sweep(horizons) would delete now."""
        with self._retention_cursor() as cursor:
            cursor.execute(ACTIVITY_SWEEP_PREVIEW_SQL, horizons.params())
            return cursor.fetchone()[0]

    def sweep(
        self,
        horizons: ActivityHorizons,
        *,
        counter: str,
        batch_size: int,
        on_batch: Callable[[ActivitySweepResult], None] | None = None,
    ) -> ActivitySweepResult:
        """Delete the rows past the horizons (see ACTIVITY_SWEEP_ELIGIBLE) in committed batches.

        Each batch adds its count to the ``counter`` row of metric_totals in its own
        statement. Database errors are raised as ActivitySweepError carrying what the
        committed batches deleted.
        """
        db = router.db_for_write(self.model)
        params = {
            **horizons.params(),
            "created_after": _KEY_START,
            "batch_size": max(batch_size, 1),
            "counter": counter,
        }
        done = ActivitySweepResult(0, 0)
        try:
            while True:
                with transaction.atomic(using=db), self._retention_cursor() as cursor:
                    cursor.execute(ACTIVITY_SWEEP_BATCH_SQL, params)
                    deleted, window_end, scanned = cursor.fetchone()
                done = ActivitySweepResult(done.deleted + deleted, done.batches + 1)
                if on_batch is not None:
                    on_batch(done)
                if scanned < params["batch_size"] or window_end is None:
                    return done
                params["created_after"] = window_end
        except DatabaseError as exc:
            raise ActivitySweepError(f"activity_logs sweep failed: {exc}", done) from exc
