"""The PostgreSQL backend: a file's bytes in pending_uploads.content, in and out in chunks.

The bytes travel with their row: ``save`` leaves them to the row's insert, which streams a large
file in by binary COPY (``copy_in``); reads take one substring chunk per statement (``chunks``).
This module is the content column's manager: its raw SQL follows the managers' rules.
"""

from __future__ import annotations

import contextlib
import struct
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import IO, TYPE_CHECKING

import psycopg

from pending_uploads.storage import CHUNK_BYTES, Deleted, ShortFile, StorageUnavailable

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload

CursorFactory = Callable[[], contextlib.AbstractContextManager[psycopg.Cursor]]

# The row's clock, read from the database just before its COPY: COPY can only take values or
# column defaults, and the defaults (now()) are the transaction's time, the same for every
# file of a request. clock_timestamp() is read once, so expires_at - created_at is the TTL.
# Read in binary, its two values go into the COPY stream as they arrived.
ROW_CLOCK_SQL = """
SELECT clock.at, clock.at + %(ttl)s FROM (SELECT clock_timestamp() AS at) AS clock
"""

# Binary COPY takes each field's length before its bytes, so the content (the last field)
# can follow from the file chunk by chunk; an INSERT would need the whole value as one
# parameter. The CHECK constraints apply to COPY as to INSERT.
COPY_SQL = """
COPY pending_uploads (file_id, workspace_id, size_bytes, filename, mimetype, created_at,
                      expires_at, content)
FROM STDIN (FORMAT binary)
"""
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)
_COPY_FIELDS = 8

# One chunk, in its own statement: with STORAGE EXTERNAL it reads only the TOAST chunks that
# cover the range. Contents are never updated and file ids never reused, so a chunk found is
# a chunk of the same value; a row swept mid-download is simply not found.
CHUNK_SQL = """
SELECT substring(content FROM %(start)s FOR %(length)s) FROM pending_uploads
 WHERE file_id = %(file_id)s
"""


class PostgresStorage:
    def save(self, row: PendingUpload, source: IO[bytes]) -> IO[bytes] | None:
        """Nothing before the transaction: the row's insert carries the bytes."""
        return source

    def discard(self, rows: Sequence[PendingUpload]) -> None:
        """Nothing to do: the bytes rolled back with their rows."""

    def open(self, key: str) -> Iterator[bytes]:
        raise StorageUnavailable(f"{key} is in a bucket and PENDING_UPLOADS_S3_BUCKET is unset")

    def delete(self, keys: Sequence[str]) -> Deleted:
        raise StorageUnavailable("PENDING_UPLOADS_S3_BUCKET is unset: no bucket to delete from")

    def copy_in(
        self, cursor_factory: CursorFactory, row: PendingUpload, source: IO[bytes], ttl: timedelta
    ) -> None:
        """Insert ``row`` with the first ``row.size_bytes`` of ``source``, one chunk at a time."""
        with cursor_factory() as cursor:
            created, expires = _row_clock(cursor, ttl)
            fields = (
                row.file_id.bytes,
                row.workspace_id.bytes,
                struct.pack("!q", row.size_bytes),
                row.filename.encode(),
                row.mimetype.encode(),
                created,
                expires,
            )
            head = bytearray(_COPY_SIGNATURE)
            head += struct.pack("!h", _COPY_FIELDS)
            for field in fields:
                head += struct.pack("!i", len(field)) + field
            head += struct.pack("!i", row.size_bytes)
            with cursor.copy(COPY_SQL) as copy:
                copy.write(head)
                remaining = row.size_bytes
                while remaining:
                    chunk = source.read(min(CHUNK_BYTES, remaining))
                    if not chunk:
                        # Aborts the COPY; the transaction rolls back with it.
                        raise ShortFile(f"{row.filename} ended {remaining} bytes early")
                    copy.write(chunk)
                    remaining -= len(chunk)
                copy.write(_COPY_TRAILER)

    def chunks(
        self, cursor_factory: CursorFactory, file_id: uuid.UUID, first: bytes, length: int
    ) -> Iterator[bytes]:
        """``first``, then CHUNK_BYTES per statement until ``length``, or until the row is gone.

        No transaction is held between chunks: a row swept mid-download ends the body short.
        """
        sent = len(first)
        yield first
        while sent < length:
            params = {"file_id": file_id, "start": sent + 1, "length": CHUNK_BYTES}
            with cursor_factory() as cursor:
                cursor.execute(CHUNK_SQL, params, binary=True, prepare=True)
                found = cursor.fetchone()
            if found is None or not found[0]:
                return
            yield found[0]
            sent += len(found[0])


def _row_clock(cursor: psycopg.Cursor, ttl: timedelta) -> tuple[bytes, bytes]:
    """created_at and expires_at in PostgreSQL's binary timestamptz, as COPY takes them."""
    cursor.execute(ROW_CLOCK_SQL, {"ttl": ttl}, binary=True, prepare=True)
    result = cursor.pgresult
    assert result is not None
    return bytes(result.get_value(0, 0) or b""), bytes(result.get_value(0, 1) or b"")


POSTGRES = PostgresStorage()
