"""Receiving uploads: the checks that refuse a request whole, then one upload path."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError

from molecule.models import ActivityLog, Workspace
from molecule.services.activity import activity_append_many
from pending_uploads import conf, quotas
from pending_uploads.conf import DEFAULT_MAX_FILE_BYTES
from pending_uploads.managers import FileTooLarge, NewUpload
from pending_uploads.models import PendingUpload
from pending_uploads.sanitize import sanitize_filename, sanitize_mimetype

logger = logging.getLogger(__name__)


class UploadRefused(Exception):
    """An upload refused as a whole; nothing of it is stored. The view picks the status."""


class NoFiles(UploadRefused):
    def __init__(self) -> None:
        super().__init__("no files part in the request")


class TooManyFiles(UploadRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} files per request")
        self.limit = limit


class EmptyFile(UploadRefused):
    def __init__(self, filename: str) -> None:
        super().__init__("empty files are not accepted")
        self.filename = filename


def upload_json(row: PendingUpload) -> dict[str, Any]:
    return {"uri": row.uri, "name": row.filename, "mimeType": row.mimetype, "size": row.size_bytes}


def _upload_activity(row: PendingUpload) -> dict[str, Any]:
    """The activity row announcing one stored file, in upstream's shape: a canvas (user) row
    addressed to the workspace, whose request_body is the file's manifest."""
    return {
        "activity_type": ActivityLog.Type.A2A_RECEIVE,
        "source_id": None,
        "target_id": row.workspace_id,
        "status": "ok",
        "method": "chat_upload_receive",
        "summary": f"chat_upload_receive: {row.filename}",
        "request_body": {"file_id": str(row.file_id), **upload_json(row)},
    }


def uploads_receive(*, workspace: Workspace, files: Sequence[UploadedFile]) -> list[PendingUpload]:
    """Store every file, then its activity_logs row, in one transaction, or nothing.

    Raise an UploadRefused, FileTooLarge or QuotaExceeded for an upload refused as a whole.
    """
    if not files:
        raise NoFiles
    if len(files) > conf.max_files():
        raise TooManyFiles(conf.max_files())
    uploads = []
    for part in files:
        name = sanitize_filename(part.name)
        if not part.size:
            raise EmptyFile(name)
        uploads.append(NewUpload(name, sanitize_mimetype(part.content_type), part.size, part.file))

    def admit_and_announce(rows: list[PendingUpload]) -> None:
        # In the rows' transaction, after every byte. The quota first: QuotaExceeded rolls the
        # whole upload back (its objects deleted), and the quota's locks come before the feed's,
        # as on every path. The activity rows last, in one INSERT: it waits for the workspace's
        # earlier writers to commit and holds its later ones until this commit (the feed's
        # order, see ActivityLog.id), so nothing slow may follow it.
        quotas.uploads_admit(workspace_id=workspace.id, files=len(rows))
        activity_append_many(
            workspace_id=workspace.id, rows=[_upload_activity(row) for row in rows]
        )

    try:
        rows = PendingUpload.objects.put_batch(
            workspace.id,
            uploads,
            ttl=conf.ttl(),
            max_bytes=conf.max_file_bytes(),
            then=admit_and_announce,
        )
    except IntegrityError:
        # A PENDING_UPLOADS_MAX_FILE_BYTES above the database CHECK (which carries the default
        # cap) lets through a file PostgreSQL refuses; the batch rolled back, nothing is stored.
        too_big = next((u for u in uploads if u.size_bytes > DEFAULT_MAX_FILE_BYTES), None)
        if too_big is None:
            raise
        raise FileTooLarge(too_big.filename, too_big.size_bytes, DEFAULT_MAX_FILE_BYTES) from None
    logger.info(
        "chat uploads stored workspace=%s files=%d bytes=%d",
        workspace.id,
        len(rows),
        sum(row.size_bytes for row in rows),
    )
    return rows
