"""The upload path's quotas: files per window and bytes stored per workspace (molecule.quotas)."""

from __future__ import annotations

import uuid

from molecule import quotas
from pending_uploads import conf
from pending_uploads.models import PendingUpload


def _retry_after() -> float:
    # Stored bytes are freed when the workspace acks its files and the next sweep runs.
    return conf.sweep_interval().total_seconds()


def uploads_precheck(*, workspace_id: uuid.UUID, declared_bytes: int) -> None:
    """Before the body is read: refuse an upload that cannot fit (its whole Content-Length)."""
    quotas.quota_precheck(workspace_id=workspace_id, quota=quotas.UPLOADS, amount=1)
    quotas.quota_check_level(
        workspace_id=workspace_id,
        quota=quotas.PENDING_BYTES,
        level=lambda: PendingUpload.objects.stored_bytes(workspace_id),
        adding=declared_bytes,
        retry_after=_retry_after(),
        locked=False,
    )


def uploads_admit(*, workspace_id: uuid.UUID, files: int) -> None:
    """In the upload's transaction, after its bytes are written: charge the files to this
    window, then count the workspace's stored bytes, this upload's included. QuotaExceeded
    rolls the whole upload back."""
    quotas.quota_charge(workspace_id=workspace_id, quota=quotas.UPLOADS, amount=files)
    quotas.quota_check_level(
        workspace_id=workspace_id,
        quota=quotas.PENDING_BYTES,
        level=lambda: PendingUpload.objects.stored_bytes(workspace_id),
        retry_after=_retry_after(),
    )
