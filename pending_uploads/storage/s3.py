"""The S3 backend: file bytes as objects in a bucket, through boto3 with bounded waits.

Endpoint, credentials and region are boto3's own environment; nothing here names a host, so
the same code serves AWS S3, R2, MinIO, Ceph RGW, SeaweedFS and Garage. No call holds more
than one part (PENDING_UPLOADS_S3_PART_BYTES) or one chunk of a file in memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from molecule.errors import first_line
from pending_uploads import conf
from pending_uploads.storage import (
    CHUNK_BYTES,
    Deleted,
    ObjectMissing,
    ShortFile,
    StorageUnavailable,
)

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload

logger = logging.getLogger(__name__)

# Bounded waits, so that a store that is away answers the caller in seconds, never hangs a
# worker thread: a refused or silent connection fails after 5 s, a stalled read after 30 s
# (per socket read, not per transfer), and each call is tried 3 times in all (standard mode:
# jittered exponential backoff, throttling and 5xx answers included).
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30
MAX_ATTEMPTS = 3
# Connections kept per client: one per gthread thread (GUNICORN_THREADS, 16 by default) that
# may stream a download at once, with room to spare; botocore's default is 10.
MAX_POOL_CONNECTIONS = 32
# S3's own answers for a key or bucket that does not exist.
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client() -> Any:
    """One boto3 client per process (clients are thread-safe; creating them is not)."""
    style = conf.s3_addressing_style()
    with _clients_lock:
        found = _clients.get(style)
        if found is None:
            config = Config(
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
                retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                max_pool_connections=MAX_POOL_CONNECTIONS,
                s3={"addressing_style": style},
                # Only the checksums an operation requires: botocore's default CRC32 trailers
                # on every PUT are refused by several S3-compatible stores.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            found = _clients[style] = boto3.session.Session().client("s3", config=config)
    return found


class ObjectInfo(NamedTuple):
    key: str
    size: int
    last_modified: datetime


class S3Storage:
    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix

    def key_for(self, row: PendingUpload) -> str:
        return f"{self.prefix}{row.workspace_id}/{row.file_id}"

    def save(self, row: PendingUpload, source: IO[bytes]) -> IO[bytes] | None:
        """Upload the first ``row.size_bytes`` of ``source``; the row gets the key and SHA-256.

        One PUT up to the part size, a multipart upload above it (one part in memory at a time;
        a failed one is aborted, so it leaves no parts behind).
        """
        key = self.key_for(row)
        part_bytes = max(conf.s3_part_bytes(), conf.MIN_S3_PART_BYTES)
        digest = hashlib.sha256()
        source.seek(0)
        if row.size_bytes <= part_bytes:
            data = _read_exactly(source, row.size_bytes, row.filename)
            digest.update(data)
            self._call("put_object", Key=key, Body=data)
        else:
            self._multipart(key, source, row, part_bytes, digest)
        row.storage_key = key
        row.content_sha256 = digest.digest()
        return None

    def _multipart(
        self, key: str, source: IO[bytes], row: PendingUpload, part_bytes: int, digest: Any
    ) -> None:
        upload_id = self._call("create_multipart_upload", Key=key)["UploadId"]
        try:
            parts = []
            remaining = row.size_bytes
            while remaining:
                data = _read_exactly(source, min(part_bytes, remaining), row.filename, remaining)
                digest.update(data)
                number = len(parts) + 1
                answer = self._call(
                    "upload_part", Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                remaining -= len(data)
                del data
            self._call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            try:
                self._call("abort_multipart_upload", Key=key, UploadId=upload_id)
            except StorageUnavailable as exc:
                # The bucket's abort-incomplete-multipart lifecycle rule removes the parts.
                logger.warning("could not abort the multipart upload of %s: %s", key, exc)
            raise

    def discard(self, rows: Sequence[PendingUpload]) -> None:
        """Delete the objects of rows whose transaction failed; the reaper gets any left."""
        keys = [row.storage_key for row in rows if row.storage_key]
        if not keys:
            return
        try:
            deleted = self.delete(keys)
        except StorageUnavailable as exc:
            deleted = Deleted([], dict.fromkeys(keys, str(exc)))
        if deleted.failed:
            logger.warning(
                "could not delete %d objects of a failed upload (the reaper will): %s",
                len(deleted.failed),
                next(iter(deleted.failed.values())),
            )

    def open(self, key: str) -> Iterator[bytes]:
        """Start the GET now, so a missing object or a store that is away is known before
        any response header is sent; the body then streams in CHUNK_BYTES pieces."""
        try:
            body = client().get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _error_code(exc) in MISSING_CODES:
                raise ObjectMissing(key) from None
            raise StorageUnavailable(first_line(exc)) from None
        except BotoCoreError as exc:
            raise StorageUnavailable(first_line(exc)) from None
        return _stream(key, body)

    def delete(self, keys: Sequence[str]) -> Deleted:
        """One DeleteObjects of up to DELETE_BATCH keys; S3 reports per-key errors."""
        answer = self._call(
            "delete_objects",
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        failed = {
            error["Key"]: f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
            for error in answer.get("Errors", [])
        }
        return Deleted([key for key in keys if key not in failed], failed)

    def listing(self) -> Iterator[list[ObjectInfo]]:
        """Every object under the prefix, a page (up to 1,000) at a time."""
        pages = (
            client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=self.prefix)
        )
        try:
            for page in pages:
                yield [
                    ObjectInfo(item["Key"], item["Size"], item["LastModified"])
                    for item in page.get("Contents", [])
                ]
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(first_line(exc)) from None

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(client(), operation)(Bucket=self.bucket, **params)
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable(f"{operation}: {first_line(exc)}") from None


def _read_exactly(
    source: IO[bytes], size: int, filename: str, remaining: int | None = None
) -> bytes:
    data = source.read(size)
    if len(data) < size:
        short = (size if remaining is None else remaining) - len(data)
        raise ShortFile(f"{filename} ended {short} bytes early")
    return data


def _stream(key: str, body: Any) -> Iterator[bytes]:
    """The body's chunks; a store that fails mid-way ends the body short (one log line)."""
    try:
        yield from body.iter_chunks(CHUNK_BYTES)
    except (BotoCoreError, OSError) as exc:
        logger.error("reading object %s failed mid-download: %s", key, first_line(exc))
    finally:
        body.close()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
