"""Pending-uploads settings with their defaults, read at call time."""

from datetime import timedelta

from django.conf import settings

# Upstream's per-file and per-request cap (100 MB). The database CHECK
# pending_uploads_size_bytes_check carries this default cap.
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024


def max_file_bytes() -> int:
    return getattr(settings, "PENDING_UPLOADS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def max_request_bytes() -> int:
    return getattr(settings, "PENDING_UPLOADS_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES)


def max_attachments_per_message() -> int:
    # Advisory, as upstream's is: published by GET /uploads/limits, not enforced (max_files is).
    return getattr(settings, "PENDING_UPLOADS_MAX_ATTACHMENTS_PER_MESSAGE", 10)


def max_files() -> int:
    return getattr(settings, "PENDING_UPLOADS_MAX_FILES", 64)


def ttl() -> timedelta:
    return getattr(settings, "PENDING_UPLOADS_TTL", timedelta(hours=24))


def ack_retention() -> timedelta:
    return getattr(settings, "PENDING_UPLOADS_ACK_RETENTION", timedelta(hours=1))


def sweep_interval() -> timedelta:
    return getattr(settings, "PENDING_UPLOADS_SWEEP_INTERVAL", timedelta(minutes=5))


def sweep_batch_size() -> int:
    return getattr(settings, "PENDING_UPLOADS_SWEEP_BATCH_SIZE", 2500)


def sweep_batch_bytes() -> int:
    return getattr(settings, "PENDING_UPLOADS_SWEEP_BATCH_BYTES", 32 * 1024 * 1024)
