"""Receiving uploads, sweeping them and their bucket objects: transactions, metrics, logging."""

from pending_uploads.services.objects import (
    NO_OBJECTS,
    ReapError,
    ReapReport,
    uploads_objects_drain,
    uploads_objects_reap,
)
from pending_uploads.services.sweep import (
    SweepReport,
    uploads_count_error,
    uploads_record_run,
    uploads_sweep,
)
from pending_uploads.services.uploads import (
    EmptyFile,
    NoFiles,
    TooManyFiles,
    UploadRefused,
    upload_json,
    uploads_receive,
)

__all__ = [
    "NO_OBJECTS",
    "EmptyFile",
    "NoFiles",
    "ReapError",
    "ReapReport",
    "SweepReport",
    "TooManyFiles",
    "UploadRefused",
    "upload_json",
    "uploads_count_error",
    "uploads_objects_drain",
    "uploads_objects_reap",
    "uploads_receive",
    "uploads_record_run",
    "uploads_sweep",
]
