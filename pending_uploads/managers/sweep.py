"""The sweep: the raw batch statement, its dry-run twin, and the backlog gauges' query."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, transaction

from molecule.managers.cursors import RoutedCursorsMixin
from molecule.totals import ADD_TO_TOTALS
from pending_uploads import metrics
from pending_uploads.managers.types import Backlog, SweepError, SweepResult

# Raw so that one round trip per batch deletes and counts, with no row data travelling back.
# Each arm walks its own partial index in key order from where the previous batch stopped
# (acked_from / expired_from), so a batch does not rescan the index entries of rows that earlier
# batches already deleted. SKIP LOCKED lets concurrent sweepers share the work without waiting
# or counting a row twice. An arm that is finished runs with LIMIT 0.
# The acked arm leaves out "acked_at IS NOT NULL" (the comparison implies it): spelled out,
# the planner counts the NULL fraction twice, expects a tenth of the rows and sorts a bitmap
# scan of every eligible row on each batch instead of walking the index.
# Each arm also stops at max_bytes of content (but takes at least one row): deleting large,
# TOASTed files costs by the byte, and a batch must stay a short statement. A bucket row's
# bytes are not in the table, so they count as 0: deleting its row costs the same whatever
# the file's size (its object is deleted later, by the outbox drain).
# The picked rows are locked, so their ctids stay put until commit: the DELETE is a TID scan.
# Picking without the lock (the DELETE restating eligibility for EvalPlanQual's recheck) was
# measured and is no faster, even at 1,000,000 rows: the lock's WAL record is small beside the
# full-page images, and the cost is the key-ordered walk's heap reads. It would also make two
# sweepers queue behind each other's batches instead of sharing the rows.
# The counted CTE adds the batch's counts to metric_totals in the same statement, so the
# counter commits with the delete: no crash can leave rows gone and uncounted.
# The outboxed CTE is the transactional outbox: the bucket keys of the deleted rows commit with
# their delete, as one entry for the batch (one row, one index entry, however many keys), and
# the drain (managers.outbox) deletes the objects afterwards. No crash can
# leave an object without a row and without an outbox entry, nor delete an object whose row
# is still there.
SWEEP_BATCH_SQL = f"""
WITH acked_picked AS (
    SELECT ctid, acked_at, CASE WHEN storage_key IS NULL THEN size_bytes ELSE 0 END AS bytes
      FROM pending_uploads
     WHERE acked_at <= now() - make_interval(secs => %(retention_seconds)s)
       AND acked_at >= %(acked_from)s
     ORDER BY acked_at
     LIMIT %(acked_limit)s
       FOR UPDATE SKIP LOCKED
), expired_picked AS (
    SELECT ctid, expires_at, CASE WHEN storage_key IS NULL THEN size_bytes ELSE 0 END AS bytes
      FROM pending_uploads
     WHERE acked_at IS NULL
       AND expires_at <= now()
       AND expires_at >= %(expired_from)s
     ORDER BY expires_at
     LIMIT %(expired_limit)s
       FOR UPDATE SKIP LOCKED
), doomed AS (
    SELECT ctid FROM (
        SELECT ctid, bytes,
               sum(bytes) OVER (ORDER BY acked_at ROWS UNBOUNDED PRECEDING) AS running
          FROM acked_picked
    ) AS acked WHERE running - bytes < %(max_bytes)s
    UNION ALL
    SELECT ctid FROM (
        SELECT ctid, bytes,
               sum(bytes) OVER (ORDER BY expires_at ROWS UNBOUNDED PRECEDING) AS running
          FROM expired_picked
    ) AS expired WHERE running - bytes < %(max_bytes)s
), deleted AS (
    DELETE FROM pending_uploads
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM doomed))
 RETURNING acked_at, expires_at, storage_key
), outboxed AS (
    INSERT INTO pending_uploads_object_deletions (keys)
    SELECT array_agg(storage_key) FROM deleted WHERE storage_key IS NOT NULL
    HAVING count(*) > 0
), tally AS (
    SELECT count(*) FILTER (WHERE acked_at IS NOT NULL) AS acked,
           count(*) FILTER (WHERE acked_at IS NULL) AS expired,
           max(acked_at) AS last_acked_at,
           max(expires_at) FILTER (WHERE acked_at IS NULL) AS last_expires_at
      FROM deleted
), increments (metric, label, n) AS (
    SELECT %(counter)s, 'acked', acked FROM tally
    UNION ALL
    SELECT %(counter)s, 'expired', expired FROM tally
), counted AS ({ADD_TO_TOTALS})
SELECT acked, expired, last_acked_at, last_expires_at,
       (SELECT count(*) FROM acked_picked),
       (SELECT count(*) FROM expired_picked)
  FROM tally
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The sweep's predicate, counted without deleting (sweep(dry_run=True)).
SWEEP_PREVIEW_SQL = """
SELECT count(*) FILTER (WHERE acked_at IS NOT NULL),
       count(*) FILTER (WHERE acked_at IS NULL)
  FROM pending_uploads
 WHERE (acked_at IS NOT NULL AND acked_at <= now() - make_interval(secs => %(retention_seconds)s))
    OR (acked_at IS NULL AND expires_at <= now())
"""

# The backlog gauges in one statement; the acked count is an index-only scan.
BACKLOG_SQL = """
SELECT (SELECT count(*) FROM pending_uploads WHERE acked_at IS NOT NULL),
       (SELECT coalesce(sum(cardinality(keys)), 0) FROM pending_uploads_object_deletions),
       count(*) FILTER (WHERE fetched_at IS NULL),
       count(*) FILTER (WHERE fetched_at IS NOT NULL),
       EXTRACT(EPOCH FROM now() - min(created_at))
  FROM pending_uploads
 WHERE acked_at IS NULL
"""

_KEY_START = datetime(1, 1, 1, tzinfo=UTC)


class SweepMixin(RoutedCursorsMixin):
    db: str

    def backlog(self) -> Backlog:
        with self._cursor() as cursor:
            cursor.execute(BACKLOG_SQL)
            acked, outbox, pending, fetched, oldest = cursor.fetchone()
        return Backlog(pending, fetched, acked, float(oldest or 0.0), outbox)

    def sweep(
        self,
        ack_retention: timedelta,
        *,
        batch_size: int,
        batch_bytes: int,
        dry_run: bool = False,
        on_batch: Callable[[SweepResult, int], None] | None = None,
    ) -> SweepResult:
        """Delete acked rows older than ``ack_retention`` and unacked rows past expires_at.

        Works in batches of at most ``batch_size`` rows and ``batch_bytes`` of content per arm,
        each committed on its own, until every arm comes back short. Negative retention counts
        as zero. Database errors are raised as SweepError, carrying the counts of the batches
        that had already committed.
        ``on_batch`` is called after each batch with the running total and batch count.
        """
        retention_seconds = max(ack_retention.total_seconds(), 0.0)
        if dry_run:
            try:
                with self._cursor() as cursor:
                    cursor.execute(SWEEP_PREVIEW_SQL, {"retention_seconds": retention_seconds})
                    return SweepResult(*cursor.fetchone())
            except DatabaseError as exc:
                raise SweepError(f"pending_uploads sweep (dry run) failed: {exc}") from exc
        done = SweepResult(0, 0)
        try:
            batches = self._sweep_batches(
                retention_seconds, max(batch_size, 1), max(batch_bytes, 1)
            )
            for number, batch in enumerate(batches, start=1):
                done += batch
                if on_batch is not None:
                    on_batch(done, number)
        except DatabaseError as exc:
            raise SweepError(f"pending_uploads sweep failed: {exc}", partial=done) from exc
        return done

    def _sweep_batches(
        self, retention_seconds: float, batch_size: int, batch_bytes: int
    ) -> Iterator[SweepResult]:
        params = {
            "retention_seconds": retention_seconds,
            "counter": metrics.uploads_swept.name,
            "max_bytes": batch_bytes,
            "acked_from": _KEY_START,
            "expired_from": _KEY_START,
            "acked_limit": batch_size,
            "expired_limit": batch_size,
        }
        while params["acked_limit"] or params["expired_limit"]:
            with transaction.atomic(using=self.db), self._cursor() as cursor:
                cursor.execute(SWEEP_BATCH_SQL, params)
                acked, expired, last_acked_at, last_expires_at, acked_picked, expired_picked = (
                    cursor.fetchone()
                )
            yield SweepResult(acked, expired)
            _advance(params, "acked", acked, acked_picked, last_acked_at)
            _advance(params, "expired", expired, expired_picked, last_expires_at)


def _advance(
    params: dict[str, Any], arm: str, deleted: int, picked: int, last_key: datetime | None
) -> None:
    """Finish an arm that came back short, or continue it from its last deleted key."""
    limit = params[f"{arm}_limit"]
    if not limit:
        return
    # Fewer rows than the limit, none held back by the byte cap: nothing is left to take.
    if picked < limit and deleted == picked:
        params[f"{arm}_limit"] = 0
    else:
        params[f"{arm}_from"] = last_key
