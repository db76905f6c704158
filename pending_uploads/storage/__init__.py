"""Where a file's bytes live: the content column or an S3 bucket, behind one small interface.

The write side follows the setting: with PENDING_UPLOADS_S3_BUCKET, ``backend()`` is the bucket,
otherwise PostgreSQL. The read side follows the row: a row with a storage_key is read from the
bucket, any other from its content column, so rows stored before a switch stay readable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, NamedTuple, Protocol

from pending_uploads import conf

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload
    from pending_uploads.storage.s3 import S3Storage

# 1 MiB: large enough that a 99 MiB file is 99 round trips (each a few ms against a raw read
# of the whole value), small enough that a worker holds a few MiB per transfer at most.
CHUNK_BYTES = 1024 * 1024
# Most keys one DeleteObjects request takes (S3's limit); also the outbox's claim size.
DELETE_BATCH = 1000


class ShortFile(Exception):
    """The file had fewer bytes than the size declared for it."""


class StorageUnavailable(Exception):
    """The object store could not be reached, or refused the request (the view answers 503)."""


class ObjectMissing(Exception):
    """A row names an object the bucket does not hold (the view answers 404)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"object {key} is missing from the bucket")
        self.key = key


class Deleted(NamedTuple):
    """What one DeleteObjects round deleted, and the per-key errors it reported."""

    keys: list[str]
    failed: dict[str, str]


class Storage(Protocol):
    """A byte store: ``save`` before the row's transaction, ``open`` to stream, ``delete``."""

    def save(self, row: PendingUpload, source: IO[bytes]) -> IO[bytes] | None:
        """Store what does not travel with the row; return what the row's insert must carry."""

    def discard(self, rows: Sequence[PendingUpload]) -> None:
        """Remove what ``save`` stored for rows whose transaction did not commit."""

    def open(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks; ObjectMissing or StorageUnavailable before the first."""

    def delete(self, keys: Sequence[str]) -> Deleted:
        """Delete up to DELETE_BATCH objects; a key that is already gone counts as deleted."""


def backend() -> Storage:
    """Where new uploads go: the bucket when PENDING_UPLOADS_S3_BUCKET names one."""
    from pending_uploads.storage.postgres import POSTGRES

    return bucket() or POSTGRES


def bucket() -> S3Storage | None:
    """The configured bucket, or None; boto3 is imported only when one is set.

    Bucket rows are read through it too: with the setting gone, ``backend()`` is PostgreSQL,
    whose ``open`` says the bucket is unset.
    """
    name = conf.s3_bucket()
    if not name:
        return None
    from pending_uploads.storage.s3 import S3Storage

    return S3Storage(name, conf.s3_prefix())
