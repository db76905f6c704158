"""Every query on pending_uploads: storage here, the sweep in ``sweep``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import models, transaction
from django.db.models import Max, Min, Sum
from django.utils import timezone

from pending_uploads import storage
from pending_uploads.managers.admin import (
    AdminQuerySetMixin,
    AdminReadsMixin,
    FilenameWords,
    SweepLeftAlone,
)
from pending_uploads.managers.content import (
    CHUNK_BYTES,
    ContentMixin,
    ShortFile,
)
from pending_uploads.managers.outbox import OutboxMixin
from pending_uploads.managers.sweep import (
    SWEEP_BATCH_SQL,
    SWEEP_PREVIEW_SQL,
    SweepMixin,
)
from pending_uploads.managers.types import (
    AckOutcome,
    Backlog,
    DrainResult,
    FileTooLarge,
    NewUpload,
    OpenedContent,
    SweepError,
    SweepResult,
)

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload

__all__ = [
    "ACK_SQL",
    "CHUNK_BYTES",
    "MARK_FETCHED_SQL",
    "SWEEP_BATCH_SQL",
    "SWEEP_PREVIEW_SQL",
    "AckOutcome",
    "Backlog",
    "DrainResult",
    "FileTooLarge",
    "FilenameWords",
    "NewUpload",
    "OpenedContent",
    "PendingUploadManager",
    "ShortFile",
    "SweepError",
    "SweepLeftAlone",
    "SweepResult",
]

# Raw so that "was it there, unacked, when the ack began" and "did the stamp land" come from one
# statement: both CTEs read the statement's snapshot, but the UPDATE waits for a sweep that holds
# the row locked and, once the sweep commits its DELETE, finds nothing to stamp. A row the
# snapshot saw unacked and the UPDATE no longer found is exactly an ack that raced the sweep.
# COALESCE keeps the first acked_at; a repeated ack rewrites it unchanged.
ACK_SQL = """
WITH seen AS (
    SELECT acked_at IS NULL AS unacked FROM pending_uploads
     WHERE workspace_id = %(workspace_id)s AND file_id = %(file_id)s AND expires_at > now()
), stamped AS (
    UPDATE pending_uploads SET acked_at = COALESCE(acked_at, now())
     WHERE workspace_id = %(workspace_id)s AND file_id = %(file_id)s AND expires_at > now()
 RETURNING 1
)
SELECT (SELECT bool_or(unacked) FROM seen), EXISTS (SELECT 1 FROM stamped)
"""

# Raw so that it is prepared once per connection: every content fetch runs it.
MARK_FETCHED_SQL = """
UPDATE pending_uploads SET fetched_at = now()
 WHERE workspace_id = %(workspace_id)s AND file_id = %(file_id)s AND expires_at > now()
"""


class PendingUploadQuerySet(AdminQuerySetMixin, models.QuerySet["PendingUpload"]):
    def live(self) -> PendingUploadQuerySet:
        """Unacked and unexpired: what a workspace still lists."""
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
    ContentMixin,
    SweepMixin,
    OutboxMixin,
    AdminReadsMixin,
    models.Manager.from_queryset(PendingUploadQuerySet),
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
        then: Callable[[list[PendingUpload]], None] | None = None,
    ) -> list[PendingUpload]:
        """Insert every upload or none; every size is checked before the first write.

        Each file's bytes are stored first (in the bucket, before the transaction, so that it
        stays short; in PostgreSQL, with the row), then one transaction inserts the rows and
        runs ``then(rows)`` last, for writes that must commit with them (the quota charge, the
        activity rows). If anything fails, ``then`` included, the objects already written are
        deleted and nothing is stored.
        """
        uploads = list(uploads)
        for upload in uploads:
            if upload.size_bytes > max_bytes:
                raise FileTooLarge(upload.filename, upload.size_bytes, max_bytes)
        store = storage.backend()
        rows = [
            self.model(
                file_id=uuid.uuid4(),
                workspace_id=workspace_id,
                size_bytes=upload.size_bytes,
                filename=upload.filename,
                mimetype=upload.mimetype,
            )
            for upload in uploads
        ]
        try:
            sources = [
                store.save(row, upload.source) for row, upload in zip(rows, uploads, strict=True)
            ]
            with transaction.atomic(using=self.db):
                for row, source in zip(rows, sources, strict=True):
                    self.put_from_file(row, source, ttl=ttl)
                if then is not None:
                    then(rows)
        except BaseException:
            store.discard(rows)
            raise
        return rows

    def mark_fetched(self, workspace_id: uuid.UUID, file_id: uuid.UUID) -> bool:
        """Stamp fetched_at with this fetch's time; False when the row is no longer fetchable."""
        with self._binary_cursor() as cursor:
            params = {"workspace_id": workspace_id, "file_id": file_id}
            cursor.execute(MARK_FETCHED_SQL, params, prepare=True)
            return cursor.rowcount > 0

    def ack(self, workspace_id: uuid.UUID, file_id: uuid.UUID) -> AckOutcome:
        """Stamp acked_at the first time; say whether the row was there, or raced the sweep."""
        with self._binary_cursor() as cursor:
            params = {"workspace_id": workspace_id, "file_id": file_id}
            cursor.execute(ACK_SQL, params, prepare=True)
            unacked, stamped = cursor.fetchone()
        if stamped:
            return AckOutcome.ACKED
        if unacked:
            return AckOutcome.RACED
        return AckOutcome.ABSENT

    def list_for_workspace(
        self,
        workspace_id: uuid.UUID,
        *,
        after: tuple[Any, uuid.UUID] | None = None,
        limit: int = 100,
    ) -> list[PendingUpload]:
        """Unacked, unexpired rows oldest first, strictly after the (created_at, file_id) key."""
        rows = self.live().for_workspace(workspace_id).defer("content")
        if after is not None:
            at, file_id = after
            # The created_at >= bound is the index condition; the OR only filters its ties.
            rows = rows.filter(created_at__gte=at).filter(
                models.Q(created_at__gt=at) | models.Q(file_id__gt=file_id)
            )
        return list(rows.order_by("created_at", "file_id")[:limit])

    def page_key(self, workspace_id: uuid.UUID, file_id: uuid.UUID) -> tuple[Any, uuid.UUID] | None:
        """The (created_at, file_id) of this workspace's row ``file_id``, acked or not, or None."""
        return (
            self.for_workspace(workspace_id)
            .filter(file_id=file_id)
            .values_list("created_at", "file_id")
            .first()
        )

    def stored_bytes(self, workspace_id: uuid.UUID) -> int:
        """Bytes of every row of the workspace still stored, acked or expired alike: what it
        occupies until the sweep deletes it (the pending_bytes quota)."""
        return self.for_workspace(workspace_id).aggregate(total=Sum("size_bytes"))["total"] or 0
