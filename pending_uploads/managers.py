"""Every query on pending_uploads, including the raw sweep statements."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import psycopg
from django.contrib.postgres.functions import TransactionNow as Now
from django.db import DatabaseError, connections, models, router, transaction
from django.db.models import Max, Min
from django.utils import timezone

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload

# Raw so that one round trip per batch deletes and counts, with no row data travelling back.
# Each arm walks its own partial index in key order from where the previous batch stopped
# (acked_from / expired_from), so a batch does not rescan the index entries of rows that earlier
# batches already deleted. SKIP LOCKED lets concurrent sweepers share the work without waiting
# or counting a row twice. An arm whose previous batch came back short runs with LIMIT 0.
# The acked arm leaves out "acked_at IS NOT NULL" (the comparison implies it): spelled out,
# the planner counts the NULL fraction twice, expects a tenth of the rows and sorts a bitmap
# scan of every eligible row on each batch instead of walking the index.
# The rows are locked, so their ctids stay put until commit: the DELETE is a TID scan.
SWEEP_BATCH_SQL = """
WITH acked AS (
    SELECT ctid FROM pending_uploads
     WHERE acked_at <= now() - make_interval(secs => %(retention_seconds)s)
       AND acked_at >= %(acked_from)s
     ORDER BY acked_at
     LIMIT %(acked_limit)s
       FOR UPDATE SKIP LOCKED
), expired AS (
    SELECT ctid FROM pending_uploads
     WHERE acked_at IS NULL
       AND expires_at <= now()
       AND expires_at >= %(expired_from)s
     ORDER BY expires_at
     LIMIT %(expired_limit)s
       FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM pending_uploads
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM acked UNION ALL SELECT ctid FROM expired))
 RETURNING acked_at, expires_at
)
SELECT count(*) FILTER (WHERE acked_at IS NOT NULL),
       count(*) FILTER (WHERE acked_at IS NULL),
       max(acked_at),
       max(expires_at) FILTER (WHERE acked_at IS NULL)
  FROM deleted
"""

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
       count(*) FILTER (WHERE fetched_at IS NULL),
       count(*) FILTER (WHERE fetched_at IS NOT NULL),
       EXTRACT(EPOCH FROM now() - min(created_at))
  FROM pending_uploads
 WHERE acked_at IS NULL
"""

# Raw, on a cursor that binds parameters server-side: Django's psycopg cursor inlines them
# into the SQL text, which turns a 25 MiB file into a 50 MiB hex literal plus copies of it.
# clock_timestamp() advances within a transaction, so one request's files keep their order.
INSERT_SQL = """
INSERT INTO pending_uploads
       (file_id, workspace_id, content, size_bytes, filename, mimetype, created_at, expires_at)
VALUES (%(file_id)s, %(workspace_id)s, %(content)b, %(size_bytes)s, %(filename)s, %(mimetype)s,
        clock_timestamp(), clock_timestamp() + %(ttl)s)
"""

# Raw and read in binary format for the same reason: a text-format bytea arrives as hex.
LIVE_WITH_CONTENT_SQL = """
SELECT file_id, workspace_id, filename, mimetype, size_bytes, created_at, fetched_at, acked_at,
       expires_at, content
  FROM pending_uploads
 WHERE workspace_id = %(workspace_id)s AND file_id = %(file_id)s
   AND acked_at IS NULL AND expires_at > now()
"""

_KEY_START = datetime(1, 1, 1, tzinfo=UTC)
_INSERTED_FIELDS = ("file_id", "workspace_id", "size_bytes", "filename", "mimetype")


class SweepResult(NamedTuple):
    acked: int
    expired: int

    @property
    def total(self) -> int:
        return self.acked + self.expired

    def __add__(self, other: object) -> SweepResult:
        if not isinstance(other, SweepResult):
            return NotImplemented
        return SweepResult(self.acked + other.acked, self.expired + other.expired)


class Backlog(NamedTuple):
    pending: int
    fetched: int
    acked: int
    oldest_unacked_age_seconds: float


class SweepError(Exception):
    """The pending-uploads sweep failed; ``partial`` holds what committed batches deleted."""

    def __init__(self, message: str, partial: SweepResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial or SweepResult(0, 0)


class FileTooLarge(Exception):
    def __init__(self, filename: str, size: int, limit: int) -> None:
        super().__init__(f"{filename} is {size} bytes, over the {limit}-byte cap")
        self.filename = filename
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class NewUpload:
    filename: str
    mimetype: str
    size_bytes: int
    # Read once, at insert time, so only one file's bytes are in memory at once.
    source: IO[bytes]


class PendingUploadQuerySet(models.QuerySet["PendingUpload"]):
    def live(self) -> PendingUploadQuerySet:
        """Unacked and unexpired: what a workspace may still list and fetch."""
        return self.filter(acked_at__isnull=True, expires_at__gt=Now())

    def for_workspace(self, workspace_id: uuid.UUID) -> PendingUploadQuerySet:
        return self.filter(workspace_id=workspace_id)

    def datetimes(
        self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None, **kwargs: Any
    ) -> Any:
        """The admin's date_hierarchy periods, probed one by one on the created_at index.

        Django's DISTINCT date_trunc reads every row; rows live about a day, so there are only
        a few periods to probe. Other fields and kinds keep Django's implementation.
        """
        if field_name != "created_at" or kind not in ("year", "month", "day"):
            return super().datetimes(field_name, kind, order, tzinfo, **kwargs)
        bounds = self.aggregate(first=Min("created_at"), last=Max("created_at"))
        if bounds["first"] is None:
            return []
        start = timezone.localtime(bounds["first"], tzinfo).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        if kind in ("month", "year"):
            start = start.replace(day=1)
        if kind == "year":
            start = start.replace(month=1)
        periods = []
        while start <= bounds["last"]:
            if kind == "year":
                end = start.replace(year=start.year + 1)
            elif kind == "month":
                end = (start + timedelta(days=32)).replace(day=1)
            else:
                end = start + timedelta(days=1)
            if self.filter(created_at__gte=start, created_at__lt=end).exists():
                periods.append(start)
            start = end
        return periods if order == "ASC" else periods[::-1]


class PendingUploadManager(models.Manager.from_queryset(PendingUploadQuerySet)):  # type: ignore[misc]
    def put(
        self, workspace_id: uuid.UUID, upload: NewUpload, *, ttl: timedelta, max_bytes: int
    ) -> PendingUpload:
        return self.put_batch(workspace_id, [upload], ttl=ttl, max_bytes=max_bytes)[0]

    def put_batch(
        self,
        workspace_id: uuid.UUID,
        uploads: Iterable[NewUpload],
        *,
        ttl: timedelta,
        max_bytes: int,
        on_row: Callable[[PendingUpload], None] | None = None,
    ) -> list[PendingUpload]:
        """Insert every upload or none; every size is checked before the first write.

        ``on_row`` runs inside the transaction after each insert, for writes that must
        commit with the rows (the activity log).
        """
        uploads = list(uploads)
        for upload in uploads:
            if upload.size_bytes > max_bytes:
                raise FileTooLarge(upload.filename, upload.size_bytes, max_bytes)
        stored = []
        with transaction.atomic(using=self.db), self._binary_cursor() as cursor:
            for upload in uploads:
                row = self.model(
                    file_id=uuid.uuid4(),
                    workspace_id=workspace_id,
                    size_bytes=upload.size_bytes,
                    filename=upload.filename,
                    mimetype=upload.mimetype,
                )
                upload.source.seek(0)
                params = {field: getattr(row, field) for field in _INSERTED_FIELDS}
                cursor.execute(INSERT_SQL, {**params, "content": upload.source.read(), "ttl": ttl})
                del params
                if on_row is not None:
                    on_row(row)
                stored.append(row)
        return stored

    def get_live(self, workspace_id: uuid.UUID, file_id: uuid.UUID) -> PendingUpload | None:
        """The unacked, unexpired row with its bytes, or None."""
        params = {"workspace_id": workspace_id, "file_id": file_id}
        with self._binary_cursor() as cursor:
            cursor.execute(LIVE_WITH_CONTENT_SQL, params, binary=True)
            found = cursor.fetchone()
            if found is None:
                return None
            names = [column.name for column in cursor.description]
        return self.model(**dict(zip(names, found, strict=True)))

    def mark_fetched(self, workspace_id: uuid.UUID, file_id: uuid.UUID) -> bool:
        """Stamp fetched_at on the first fetch only; True when this call stamped it."""
        return bool(
            self.live()
            .for_workspace(workspace_id)
            .filter(file_id=file_id, fetched_at__isnull=True)
            .update(fetched_at=Now())
        )

    def ack(self, workspace_id: uuid.UUID, file_id: uuid.UUID) -> bool:
        """Stamp acked_at on a live row; False when it is absent, acked, expired or foreign."""
        return bool(
            self.live().for_workspace(workspace_id).filter(file_id=file_id).update(acked_at=Now())
        )

    def list_for_workspace(self, workspace_id: uuid.UUID) -> PendingUploadQuerySet:
        return (
            self.live()
            .for_workspace(workspace_id)
            .defer("content")
            .order_by("created_at", "file_id")
        )

    def backlog(self) -> Backlog:
        with self._cursor() as cursor:
            cursor.execute(BACKLOG_SQL)
            acked, pending, fetched, oldest = cursor.fetchone()
        return Backlog(pending, fetched, acked, float(oldest or 0.0))

    def sweep(
        self,
        ack_retention: timedelta,
        *,
        batch_size: int = 5000,
        dry_run: bool = False,
        on_batch: Callable[[SweepResult, int], None] | None = None,
    ) -> SweepResult:
        """Delete acked rows older than ``ack_retention`` and unacked rows past expires_at.

        Works in batches of ``batch_size`` rows, each committed on its own, until every arm
        comes back short. Negative retention counts as zero. Database errors are raised as
        SweepError, carrying the counts of the batches that had already committed.
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
            batches = self._sweep_batches(retention_seconds, max(batch_size, 1))
            for number, batch in enumerate(batches, start=1):
                done += batch
                if on_batch is not None:
                    on_batch(done, number)
        except DatabaseError as exc:
            raise SweepError(f"pending_uploads sweep failed: {exc}", partial=done) from exc
        return done

    def _sweep_batches(self, retention_seconds: float, batch_size: int) -> Iterator[SweepResult]:
        params = {
            "retention_seconds": retention_seconds,
            "acked_from": _KEY_START,
            "expired_from": _KEY_START,
            "acked_limit": batch_size,
            "expired_limit": batch_size,
        }
        while params["acked_limit"] or params["expired_limit"]:
            with transaction.atomic(using=self.db), self._cursor() as cursor:
                cursor.execute(SWEEP_BATCH_SQL, params)
                acked, expired, last_acked_at, last_expires_at = cursor.fetchone()
            yield SweepResult(acked, expired)
            # A short arm is finished; a full one continues from its last key.
            if acked < params["acked_limit"]:
                params["acked_limit"] = 0
            else:
                params["acked_from"] = last_acked_at
            if expired < params["expired_limit"]:
                params["expired_limit"] = 0
            else:
                params["expired_from"] = last_expires_at

    def _cursor(self):
        return connections[router.db_for_write(self.model)].cursor()

    @contextlib.contextmanager
    def _binary_cursor(self) -> Iterator[psycopg.Cursor]:
        """A plain psycopg cursor on Django's connection and transaction, errors as Django's."""
        connection = connections[router.db_for_write(self.model)]
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            yield cursor
