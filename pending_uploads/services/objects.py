"""The bucket's objects: draining the sweep's outbox, and reaping objects no row names."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError

from molecule.errors import first_line
from pending_uploads import conf, storage
from pending_uploads.managers import DrainResult
from pending_uploads.models import PendingUpload
from pending_uploads.storage import DELETE_BATCH, Deleted, StorageUnavailable

logger = logging.getLogger(__name__)

NO_OBJECTS = DrainResult(0, 0)


def uploads_objects_drain() -> DrainResult:
    """Delete the bucket objects the outbox holds; what fails stays queued for the next sweep.

    A bucket that cannot be reached is logged in one line and leaves the outbox as it was (its
    pending gauge shows the backlog). Without a bucket setting there is nothing to drain to.
    """
    bucket = storage.bucket()
    if bucket is None:
        return NO_OBJECTS

    def delete(keys: list[str]) -> Deleted:
        deleted = bucket.delete(keys)
        if deleted.failed:
            key, reason = next(iter(deleted.failed.items()))
            logger.warning(
                "DeleteObjects refused %d of %d keys, which stay queued; first %s: %s",
                len(deleted.failed),
                len(keys),
                key,
                reason,
            )
        return deleted

    try:
        return PendingUpload.objects.outbox_drain(delete, batch_size=DELETE_BATCH)
    except StorageUnavailable as exc:
        logger.error("could not delete swept uploads' objects, they stay queued: %s", exc)
        return NO_OBJECTS


class ReapError(Exception):
    """The reaper could not list, check or delete the bucket's objects."""


@dataclass(frozen=True)
class ReapReport:
    # Objects under the prefix, and those that no row and no outbox entry names.
    listed: int
    orphans: int
    orphan_bytes: int
    oldest: datetime | None
    # Orphans older than the grace period; deleted (or refused) only with delete=True.
    reapable: int
    deleted: int
    failed: int


def uploads_objects_reap(*, grace: timedelta | None = None, delete: bool = False) -> ReapReport:
    """Find the bucket's objects that no row and no outbox entry names; delete those older
    than ``grace`` when ``delete`` is set. Such an object is an upload that died between its
    PUT and its commit; a younger one may be an upload in flight, so it is left alone.
    """
    bucket = storage.bucket()
    if bucket is None:
        raise ReapError("PENDING_UPLOADS_S3_BUCKET is unset: there is no bucket to reap")
    grace = conf.reap_grace() if grace is None else grace
    listed = orphans = orphan_bytes = reapable = deleted = failed = 0
    oldest = None
    try:
        for page in bucket.listing():
            listed += len(page)
            found = PendingUpload.objects.outbox_orphans(
                [(item.key, item.last_modified) for item in page], grace=grace
            )
            named = set(found.orphans)
            for item in page:
                if item.key in named:
                    orphan_bytes += item.size
                    oldest = (
                        item.last_modified if oldest is None else min(oldest, item.last_modified)
                    )
            orphans += len(found.orphans)
            reapable += len(found.reapable)
            if delete and found.reapable:
                result = bucket.delete(found.reapable)
                deleted += len(result.keys)
                failed += len(result.failed)
    except (StorageUnavailable, DatabaseError) as exc:
        raise ReapError(f"reaping the bucket's objects failed: {first_line(exc)}") from exc
    report = ReapReport(listed, orphans, orphan_bytes, oldest, reapable, deleted, failed)
    logger.info(
        "upload objects reaped: %d listed, %d orphaned (%d bytes), %d past %ss, %d deleted, "
        "%d failed",
        listed,
        orphans,
        orphan_bytes,
        reapable,
        int(grace.total_seconds()),
        deleted,
        failed,
    )
    return report
