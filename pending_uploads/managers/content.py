"""The byte path: a file goes into pending_uploads.content, and comes out, in fixed-size chunks.

Two methods are the whole interface: ``put_from_file`` and ``open_chunks``. Neither holds more
than one chunk of a file in memory; a later object-store backend would replace these two.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import IO, TYPE_CHECKING

import psycopg

from molecule.managers.cursors import RoutedCursorsMixin
from pending_uploads.managers.types import OpenedContent

if TYPE_CHECKING:
    from pending_uploads.models import PendingUpload

# 1 MiB: large enough that a 99 MiB file is 99 round trips (each a few ms against a raw read
# of the whole value), small enough that a worker holds a few MiB per transfer at most.
CHUNK_BYTES = 1024 * 1024

# A file of one chunk or less goes in as one binary parameter: one round trip, where COPY
# needs three (the clock, COPY's start, its end); measured 0.83 against 1.16 ms per 1 KiB row.
# clock_timestamp() advances within a transaction, so one request's files keep their order;
# it is read once per row, so expires_at - created_at is exactly the TTL.
INSERT_SQL = """
INSERT INTO pending_uploads
       (file_id, workspace_id, content, size_bytes, filename, mimetype, created_at, expires_at)
SELECT %(file_id)s, %(workspace_id)s, %(content)b, %(size_bytes)s, %(filename)s, %(mimetype)s,
       clock.at, clock.at + %(ttl)s
  FROM (SELECT clock_timestamp() AS at) AS clock
"""

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
_INSERTED_FIELDS = ("file_id", "workspace_id", "size_bytes", "filename", "mimetype")

# The row (without its bytes), its length and the first chunk in one round trip; a file up to
# CHUNK_BYTES needs no other. octet_length() of an uncompressed TOAST value reads only its
# pointer. "Fetchable" is what the agent's poll may fetch: present and unexpired, acked or
# not. The columns come in the model's field order, as Model.from_db takes them.
OPEN_FETCHABLE_SQL = """
SELECT file_id, workspace_id, size_bytes, filename, mimetype, created_at, fetched_at, acked_at,
       expires_at, octet_length(content), substring(content FROM 1 FOR %(length)s)
  FROM pending_uploads
 WHERE workspace_id = %(workspace_id)s AND file_id = %(file_id)s AND expires_at > now()
"""
# Staff downloads: any row still present, whatever its state.
OPEN_PRESENT_SQL = """
SELECT file_id, workspace_id, size_bytes, filename, mimetype, created_at, fetched_at, acked_at,
       expires_at, octet_length(content), substring(content FROM 1 FOR %(length)s)
  FROM pending_uploads
 WHERE file_id = %(file_id)s
"""
# One chunk, in its own statement: with STORAGE EXTERNAL it reads only the TOAST chunks that
# cover the range. Contents are never updated and file ids never reused, so a chunk found is
# a chunk of the same value; a row swept mid-download is simply not found.
CHUNK_SQL = """
SELECT substring(content FROM %(start)s FOR %(length)s) FROM pending_uploads
 WHERE file_id = %(file_id)s
"""


class ShortFile(Exception):
    """The file had fewer bytes than the size declared for it."""


class ContentMixin(RoutedCursorsMixin):
    def put_from_file(
        self, row: PendingUpload, source: IO[bytes], *, ttl: timedelta
    ) -> PendingUpload:
        """Insert ``row`` with the first ``row.size_bytes`` bytes of ``source`` as its content.

        Call it inside a transaction to commit several files (and other writes) together.
        """
        source.seek(0)
        if row.size_bytes <= CHUNK_BYTES:
            self._insert_small(row, source.read(row.size_bytes), ttl)
            return row
        with self._binary_cursor() as cursor:
            created, expires = self._row_clock(cursor, ttl)
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
        return row

    def _insert_small(self, row: PendingUpload, content: bytes, ttl: timedelta) -> None:
        if len(content) < row.size_bytes:
            raise ShortFile(f"{row.filename} ended {row.size_bytes - len(content)} bytes early")
        params = {field: getattr(row, field) for field in _INSERTED_FIELDS}
        with self._binary_cursor() as cursor:
            cursor.execute(INSERT_SQL, {**params, "content": content, "ttl": ttl}, prepare=True)

    def _row_clock(self, cursor: psycopg.Cursor, ttl: timedelta) -> tuple[bytes, bytes]:
        """created_at and expires_at in PostgreSQL's binary timestamptz, as COPY takes them."""
        cursor.execute(ROW_CLOCK_SQL, {"ttl": ttl}, binary=True, prepare=True)
        result = cursor.pgresult
        assert result is not None
        return bytes(result.get_value(0, 0) or b""), bytes(result.get_value(0, 1) or b"")

    def open_chunks(
        self, file_id: uuid.UUID, *, workspace_id: uuid.UUID | None
    ) -> OpenedContent | None:
        """The row and an iterator over its bytes, or None when there is nothing to serve.

        With ``workspace_id``, only that workspace's fetchable row (unexpired, acked or not);
        without, any row still present (staff downloads). The iterator reads one chunk per
        statement and holds no transaction between chunks; if the row is swept mid-download
        it stops early, so the body ends short of ``length`` and the client sees the failure.
        """
        params = {"file_id": file_id, "workspace_id": workspace_id, "length": CHUNK_BYTES}
        sql = OPEN_PRESENT_SQL if workspace_id is None else OPEN_FETCHABLE_SQL
        with self._binary_cursor() as cursor:
            cursor.execute(sql, params, binary=True, prepare=True)
            found = cursor.fetchone()
            if found is None:
                return None
            names = [column.name for column in cursor.description[:-2]]
        *fields, length, first = found
        # As a queryset with .defer("content") would build it: the bytes stay deferred.
        row = self.model.from_db(self.db, names, fields)
        return OpenedContent(row, length, self._chunks(file_id, first, length))

    def _chunks(self, file_id: uuid.UUID, first: bytes, length: int) -> Iterator[bytes]:
        sent = len(first)
        yield first
        while sent < length:
            chunk = self._read_chunk(file_id, sent)
            if not chunk:
                return
            yield chunk
            sent += len(chunk)

    def _read_chunk(self, file_id: uuid.UUID, offset: int) -> bytes:
        """CHUNK_BYTES from ``offset`` (0-based), or b"" when the row is gone."""
        params = {"file_id": file_id, "start": offset + 1, "length": CHUNK_BYTES}
        with self._binary_cursor() as cursor:
            cursor.execute(CHUNK_SQL, params, binary=True, prepare=True)
            found = cursor.fetchone()
        return b"" if found is None else found[0]
