"""Receiving uploads and sweeping them: transactions, metrics and logging around the manager."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import DatabaseError, IntegrityError

from molecule.errors import first_line
from molecule.models import ActivityLog, MetricTotal, Workspace
from molecule.services import activity_append
from pending_uploads import conf, metrics, storage
from pending_uploads.conf import DEFAULT_MAX_FILE_BYTES
from pending_uploads.managers import DrainResult, FileTooLarge, NewUpload, SweepError, SweepResult
from pending_uploads.models import PendingUpload
from pending_uploads.sanitize import sanitize_filename, sanitize_mimetype
from pending_uploads.storage import DELETE_BATCH, Deleted, StorageUnavailable

logger = logging.getLogger(__name__)


class UploadRefused(Exception):
    """An upload refused as a whole; nothing of it is stored. The view picks the status."""


class NotPollMode(UploadRefused):
    def __init__(self) -> None:
        super().__init__("workspace is not in poll mode")


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


def uploads_receive(*, workspace: Workspace, files: Sequence[UploadedFile]) -> list[PendingUpload]:
    """Store every file and its activity_logs row in one transaction, or nothing.

    Raise an UploadRefused, or FileTooLarge, for an upload refused as a whole.
    """
    if workspace.delivery_mode != Workspace.DeliveryMode.POLL:
        raise NotPollMode
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

    def log_activity(row: PendingUpload) -> None:
        activity_append(
            workspace_id=workspace.id,
            activity_type=ActivityLog.Type.A2A_RECEIVE,
            # Upstream's shape: a canvas (user) row, addressed to the workspace.
            source_id=None,
            target_id=workspace.id,
            status="ok",
            method="chat_upload_receive",
            summary=f"chat_upload_receive: {row.filename}",
            request_body={"file_id": str(row.file_id), **upload_json(row)},
        )

    try:
        rows = PendingUpload.objects.put_batch(
            workspace.id,
            uploads,
            ttl=conf.ttl(),
            max_bytes=conf.max_file_bytes(),
            on_row=log_activity,
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


NO_OBJECTS = DrainResult(0, 0)


@dataclass(frozen=True)
class SweepReport:
    result: SweepResult
    # Time spent in the sweep statements themselves.
    duration_ms: float
    dry_run: bool
    # Time spent refreshing the backlog gauges afterwards (None for a dry run).
    gauges_ms: float | None = None
    # Bucket objects deleted from the outbox (before and after the batches), and the time
    # that took (None for a dry run).
    objects: DrainResult = NO_OBJECTS
    drain_ms: float | None = None

    def job_result(self) -> dict[str, Any]:
        return {
            "acked": self.result.acked,
            "expired": self.result.expired,
            "objects_deleted": self.objects.deleted,
        }


def uploads_sweep(
    *,
    ack_retention: timedelta | None = None,
    dry_run: bool = False,
    on_batch: Callable[[SweepResult, int], None] | None = None,
) -> SweepReport:
    """Run the sweep, record its duration and the backlog gauges, log one line.

    Each batch counts its own deletions in metric_totals as it commits, so a failure midway
    loses no count. A failure adds the error outcome, is logged and raised as SweepError.
    """
    retention = conf.ack_retention() if ack_retention is None else ack_retention
    objects = NO_OBJECTS
    drain_seconds = 0.0
    try:
        if not dry_run:
            # Queued deletes of earlier sweeps first: one that died after its commit left them.
            drain_started = time.perf_counter()
            objects += uploads_objects_drain()
            drain_seconds += time.perf_counter() - drain_started
        started = time.perf_counter()
        result = PendingUpload.objects.sweep(
            retention,
            batch_size=conf.sweep_batch_size(),
            batch_bytes=conf.sweep_batch_bytes(),
            dry_run=dry_run,
            on_batch=on_batch,
        )
        duration = time.perf_counter() - started
        if not dry_run:
            drain_started = time.perf_counter()
            objects += uploads_objects_drain()
            drain_seconds += time.perf_counter() - drain_started
    except Exception as exc:
        partial = exc.partial if isinstance(exc, SweepError) else SweepResult(0, 0)
        if not dry_run:
            uploads_count_error()
        # One line here; the scheduled job adds the traceback (a command must print one line).
        logger.error(
            "pending uploads sweep failed after %d acked, %d expired deleted: %s",
            partial.acked,
            partial.expired,
            first_line(exc),
        )
        if isinstance(exc, SweepError):
            raise
        raise SweepError(f"pending_uploads sweep failed: {first_line(exc)}", partial) from exc
    gauges_ms = None
    if not dry_run:
        gauges_ms = uploads_record_run(duration)
    logger.info(
        "pending uploads sweep%s: %d acked, %d expired in %.1f ms (retention %ss)%s",
        " (dry run)" if dry_run else "",
        result.acked,
        result.expired,
        duration * 1000,
        int(retention.total_seconds()),
        f"; {objects.deleted} objects deleted in {drain_seconds * 1000:.1f} ms"
        if objects != NO_OBJECTS
        else "",
    )
    drain_ms = None if dry_run else drain_seconds * 1000
    return SweepReport(result, duration * 1000, dry_run, gauges_ms, objects, drain_ms)


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


def uploads_count_error() -> None:
    """Add 1 to the error outcome in its own statement; a database that is away loses it.

    The failed batch rolled back with its count, so the error is counted after it. When the
    database itself is unreachable this cannot be stored either: it is logged, and the stale
    last-sweep timestamp raises PendingUploadsSweepFailing instead.
    """
    try:
        MetricTotal.objects.add(metrics.uploads_swept.name, label="error")
    except DatabaseError as exc:
        # One line: a command that failed because the database is away must print one line.
        logger.error("could not count the failed pending-uploads sweep: %s", first_line(exc))


def uploads_record_run(duration: float) -> float | None:
    """Store a successful run's duration, timestamp and backlog gauges.

    Returns the milliseconds the backlog query took, or None when recording failed (the
    deletions are counted already; a stale gauge must not fail the sweep).
    """
    started = time.perf_counter()
    try:
        backlog = PendingUpload.objects.backlog()
        gauges_ms = (time.perf_counter() - started) * 1000
        values: dict[tuple[str, str], float | None] = {
            (metrics.backlog_rows.name, state): getattr(backlog, state)
            for state in metrics.BACKLOG_STATES
        }
        values[(metrics.oldest_unacked_age.name, "")] = backlog.oldest_unacked_age_seconds
        values[(metrics.object_deletions_pending.name, "")] = backlog.objects_pending
        values[(metrics.last_sweep_timestamp.name, "")] = None  # the database's now()
        MetricTotal.objects.gauges_set(values)
        MetricTotal.objects.observe(
            metrics.sweep_duration.name, metrics.SWEEP_DURATION_BUCKETS, duration
        )
    except DatabaseError:
        logger.exception("could not record the pending-uploads sweep's gauges")
        return None
    return gauges_ms


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
