"""Pending-uploads settings with their defaults, read at call time."""

from datetime import timedelta

from django.conf import settings

from molecule.conf import setting

# Upstream's per-file cap (100 MB). The database CHECK pending_uploads_size_bytes_check carries
# this default cap.
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024
# What a request carries besides its files: boundaries and part headers (about 150 bytes per
# file, so 64 files need about 10 KiB). The default request cap is the per-file cap plus this,
# so that a file of exactly the per-file cap uploads.
MULTIPART_ENVELOPE_BYTES = 1024 * 1024
DEFAULT_MAX_FILES = 64
DEFAULT_TTL = timedelta(hours=24)
DEFAULT_ACK_RETENTION = timedelta(hours=1)
DEFAULT_SWEEP_INTERVAL = timedelta(minutes=5)
# Rows per arm and per statement, and a byte bound so TOAST-heavy batches stay short.
DEFAULT_SWEEP_BATCH_SIZE = 2500
DEFAULT_SWEEP_BATCH_BYTES = 32 * 1024 * 1024

max_file_bytes = setting("PENDING_UPLOADS_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def max_request_bytes() -> int:
    """settings.PENDING_UPLOADS_MAX_REQUEST_BYTES, default the per-file cap plus the envelope."""
    value = getattr(settings, "PENDING_UPLOADS_MAX_REQUEST_BYTES", None)
    return max_file_bytes() + MULTIPART_ENVELOPE_BYTES if value is None else value


# Advisory, as upstream's is: published by GET /uploads/limits, not enforced (max_files is).
max_attachments_per_message = setting("PENDING_UPLOADS_MAX_ATTACHMENTS_PER_MESSAGE", 10)
max_files = setting("PENDING_UPLOADS_MAX_FILES", DEFAULT_MAX_FILES)
ttl = setting("PENDING_UPLOADS_TTL", DEFAULT_TTL)
ack_retention = setting("PENDING_UPLOADS_ACK_RETENTION", DEFAULT_ACK_RETENTION)
sweep_interval = setting("PENDING_UPLOADS_SWEEP_INTERVAL", DEFAULT_SWEEP_INTERVAL)
sweep_batch_size = setting("PENDING_UPLOADS_SWEEP_BATCH_SIZE", DEFAULT_SWEEP_BATCH_SIZE)
sweep_batch_bytes = setting("PENDING_UPLOADS_SWEEP_BATCH_BYTES", DEFAULT_SWEEP_BATCH_BYTES)

# Push mode (pending_uploads/forward.py): upstream's dial timeout, and its bound on a whole
# forward, body both ways included.
DEFAULT_FORWARD_CONNECT_TIMEOUT = timedelta(seconds=10)
DEFAULT_FORWARD_TIMEOUT = timedelta(seconds=1200)
# Forwards in flight per worker process. Each holds a gunicorn thread for its whole transfer;
# half of gunicorn.conf.py's 16 threads leaves the other half to polls whatever workspaces do.
DEFAULT_FORWARD_MAX_CONCURRENT = 8

forward_connect_timeout = setting(
    "PENDING_UPLOADS_FORWARD_CONNECT_TIMEOUT", DEFAULT_FORWARD_CONNECT_TIMEOUT
)
forward_timeout = setting("PENDING_UPLOADS_FORWARD_TIMEOUT", DEFAULT_FORWARD_TIMEOUT)
forward_max_concurrent = setting(
    "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT", DEFAULT_FORWARD_MAX_CONCURRENT
)

# --- Object storage. With no bucket, file bytes live in pending_uploads.content. Endpoint,
# credentials and region are boto3's own environment (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION or an instance role), never settings of ours.
# S3's smallest multipart part (except the last); smaller files go up in one PUT.
MIN_S3_PART_BYTES = 5 * 1024 * 1024
DEFAULT_S3_PART_BYTES = 8 * 1024 * 1024
# An object with no row is reaped only when older than this: an upload in flight has written
# its object and not yet committed its row.
DEFAULT_REAP_GRACE = timedelta(hours=1)

s3_bucket = setting("PENDING_UPLOADS_S3_BUCKET", "")
s3_prefix = setting("PENDING_UPLOADS_S3_PREFIX", "")
s3_part_bytes = setting("PENDING_UPLOADS_S3_PART_BYTES", DEFAULT_S3_PART_BYTES)
# "path" for a store reached by host name that does not serve <bucket>.<host> (MinIO, Garage).
s3_addressing_style = setting("PENDING_UPLOADS_S3_ADDRESSING_STYLE", "auto")
reap_grace = setting("PENDING_UPLOADS_REAP_GRACE", DEFAULT_REAP_GRACE)
