"""The pending_uploads staging table (one row per uploaded file, its bytes inline or in a bucket)
and the outbox of bucket objects whose rows the sweep deleted."""

import uuid
from datetime import timedelta

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.functions import RandomUUID, TransactionNow
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import Range

from pending_uploads.conf import DEFAULT_MAX_FILE_BYTES
from pending_uploads.managers import FilenameWords, PendingUploadManager


class PendingUpload(models.Model):
    file_id = models.UUIDField(primary_key=True, default=uuid.uuid4, db_default=RandomUUID())
    # Deliberately no foreign key: rows outlive their workspace and expire on their own.
    workspace_id = models.UUIDField()
    # The bytes, or NULL when they live in the bucket under storage_key (exactly one is set).
    content = models.BinaryField(null=True)
    storage_key = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL: bytes inline
    # SHA-256 of a bucket object's bytes, computed while it streamed up.
    content_sha256 = models.BinaryField(null=True, blank=True)
    size_bytes = models.BigIntegerField()
    filename = models.TextField()
    mimetype = models.TextField(default="", db_default="", blank=True)
    created_at = models.DateTimeField(db_default=TransactionNow())
    fetched_at = models.DateTimeField(null=True, blank=True)
    acked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_default=TransactionNow() + timedelta(hours=24))
    # The admin's filename search: the words, computed once per row by the database. Evaluating
    # the split per row at query time cost 6 us a row, 150-300 ms per capped count at 1M rows.
    filename_words = models.GeneratedField(
        expression=FilenameWords("filename"),
        output_field=ArrayField(models.TextField()),
        db_persist=True,
    )

    objects = PendingUploadManager()

    class Meta:
        db_table = "pending_uploads"
        ordering = ["created_at", "file_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(size_bytes__gt=0, size_bytes__lte=DEFAULT_MAX_FILE_BYTES),
                name="pending_uploads_size_bytes_check",
            ),
            models.CheckConstraint(
                condition=Range(Length("filename"), (1, 100)),
                name="pending_uploads_filename_check",
            ),
            models.CheckConstraint(
                condition=models.Q(content__isnull=True, storage_key__isnull=False)
                | models.Q(content__isnull=False, storage_key__isnull=True),
                name="pending_uploads_bytes_check",
            ),
        ]
        indexes = [
            models.Index(
                fields=["workspace_id", "created_at"],
                name="pending_uploads_ws_unacked_idx",
                condition=models.Q(acked_at__isnull=True),
            ),
            # The sweep's expired arm walks it by expires_at; the admin's expired filter pages
            # it newest first, by (expires_at, file_id), rows of one expires_at included.
            models.Index(
                fields=["expires_at", "file_id"],
                name="pending_uploads_expiry_idx",
                condition=models.Q(acked_at__isnull=True),
            ),
            # The admin lists newest first and its date_hierarchy reads MIN/MAX(created_at);
            # without this index every admin page sorts the whole table.
            models.Index(fields=["created_at", "file_id"], name="pending_uploads_created_idx"),
            models.Index(
                fields=["acked_at"],
                name="pending_uploads_acked_idx",
                condition=models.Q(acked_at__isnull=False),
            ),
            # The admin's workspace search covers acked rows too, newest first, so the partial
            # ws_unacked index above cannot serve it.
            models.Index(
                fields=["workspace_id", "created_at"], name="pending_uploads_ws_created_idx"
            ),
            # The admin's filename search: whole words.
            GinIndex(fields=["filename_words"], name="pending_uploads_words_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.file_id})"

    @property
    def uri(self) -> str:
        return f"platform-pending:{self.workspace_id}/{self.file_id}"


class ObjectDeletion(models.Model):
    """The bucket objects of one sweep batch's deleted rows: written by the sweep's own
    statement, emptied as the object deletes succeed (the transactional outbox).

    One entry per batch, its keys in an array: the batch's statement writes one row and one
    index entry instead of a row and an index entry per key (the keys TOASTed uncompressed:
    storage EXTERNAL, set by migration 0004). A partly failed drain leaves the entry with only
    the keys whose delete failed. A key is never queued twice (its row is deleted once), and
    the reaper's lookups by key read the outbox whole, which is empty or small.
    """

    id = models.BigAutoField(primary_key=True)
    keys = ArrayField(models.TextField())
    created_at = models.DateTimeField(db_default=TransactionNow())

    class Meta:
        db_table = "pending_uploads_object_deletions"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{len(self.keys)} keys, first {self.keys[0] if self.keys else '-'}"
