"""Every query on pending_uploads: storage here, the sweep in ``sweep``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import models, transaction
from django.db.models import Max, Min
from django.utils import timezone

from pending_uploads.managers.admin import (
    SWEEP_LEFT_ALONE_SQL,
    UUID_MATCH_SQL,
    AdminQuerySetMixin,
    AdminReadsMixin,
    FilenameWords,
    SweepLeftAlone,
)
from pending_uploads.managers.sweep import (
    BACKLOG_SQL,
    SWEEP_BATCH_SQL,
    SWEEP_PREVIEW_SQL,
    SweepMixin,
)
from pending_uploads.managers.types import (
    Backlog,
    FileTooLarge,
    NewUpload,
    SweepError,
    SweepResult,
)

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload

__all__ = [
    "BACKLOG_SQL",
    "INSERT_SQL",
    "LIVE_WITH_CONTENT_SQL",
    "SWEEP_BATCH_SQL",
    "SWEEP_LEFT_ALONE_SQL",
    "SWEEP_PREVIEW_SQL",
    "UUID_MATCH_SQL",
    "Backlog",
    "FileTooLarge",
    "FilenameWords",
    "NewUpload",
    "PendingUploadManager",
    "PendingUploadQuerySet",
    "SweepError",
    "SweepLeftAlone",
    "SweepResult",
]

# Raw, on a cursor that binds parameters server-side: Django's psycopg cursor inlines them
# into the SQL text, which turns a 25 MiB file into a 50 MiB hex literal plus copies of it.
# clock_timestamp() advances within a transaction, so one request's files keep their order;
# it is read once per row, so expires_at - created_at is exactly the TTL.
INSERT_SQL = """
INSERT INTO pending_uploads
       (file_id, workspace_id, content, size_bytes, filename, mimetype, created_at, expires_at)
SELECT %(file_id)s, %(workspace_id)s, %(content)b, %(size_bytes)s, %(filename)s, %(mimetype)s,
       clock.at, clock.at + %(ttl)s
  FROM (SELECT clock_timestamp() AS at) AS clock
"""

# Raw and read in binary format for the same reason: a text-format bytea arrives as hex.
LIVE_WITH_CONTENT_SQL = """
SELECT file_id, workspace_id, filename, mimetype, size_bytes, created_at, fetched_at, acked_at,
       expires_at, content
  FROM pending_uploads
 WHERE workspace_id = %(workspace_id)s AND file_id = %(file_id)s
   AND acked_at IS NULL AND expires_at > now()
"""

_INSERTED_FIELDS = ("file_id", "workspace_id", "size_bytes", "filename", "mimetype")


class PendingUploadQuerySet(AdminQuerySetMixin, models.QuerySet["PendingUpload"]):
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


class PendingUploadManager(
    SweepMixin, AdminReadsMixin, models.Manager.from_queryset(PendingUploadQuerySet)
):  # type: ignore[misc]
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
