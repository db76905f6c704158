"""Pending uploads: the upload (its bytes spooled, then stored), the fetch and the ack."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import IO, Any

import psycopg

from bench.floor.auth import credentials
from bench.floor.multipart import CHUNK, file_parts
from bench.floor.wire import Answer, connection, encode
from molecule.usage import (
    QUOTA_LOCK_CLASS,
    USAGE_CHARGE_SQL,
    USAGE_READ_SQL,
    WORKSPACE_LOCK_SQL,
)
from pending_uploads.managers import ACK_SQL, MARK_FETCHED_SQL
from pending_uploads.managers.content import INSERT_SQL, OPEN_FETCHABLE_SQL
from pending_uploads.storage.postgres import CHUNK_SQL, COPY_SQL, ROW_CLOCK_SQL

# The quota window the service counts in (QUOTA_WINDOW's default), in seconds.
_QUOTA_WINDOW = 3600
# What PendingUpload.objects.stored_bytes asks (the service's ORM aggregate, as SQL).
STORED_BYTES_SQL = (
    "SELECT coalesce(sum(size_bytes), 0) FROM pending_uploads WHERE workspace_id = %(workspace_id)s"
)
# The service's statements, word for word: the floor runs the same SQL, prepared, reading
# binary where the service does. Only the activity rows of an upload are the floor's own (the
# service writes them with Django's bulk_create).
ACTIVITY_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, source_id, target_id, method, summary,
                           request_body, status)
SELECT %(workspace)s, 'a2a_receive', NULL, %(workspace)s, 'chat_upload_receive',
       'chat_upload_receive: ' || name, jsonb_build_object('file_id', file_id, 'uri', uri,
       'name', name, 'mimeType', mimetype, 'size', size), 'ok'
  FROM unnest(%(file_ids)s::text[], %(uris)s::text[], %(names)s::text[], %(mimetypes)s::text[],
              %(sizes)s::bigint[]) AS f (file_id, uri, name, mimetype, size)
"""
_COPY_HEAD = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!iih", 0, 0, 8)
_TTL = timedelta(hours=24)


def ack(environ: dict[str, Any], workspace: uuid.UUID, file_id: str) -> bytes:
    credentials(environ, workspace)
    params = {"workspace_id": workspace, "file_id": uuid.UUID(file_id)}
    unacked, stamped = connection().execute(ACK_SQL, params).fetchone()
    if not stamped and not unacked:
        raise Answer("404 Not Found")
    return b'{"acked":true}' if stamped else b'{"acked":true,"raced":true}'


def content(environ: dict[str, Any], workspace: uuid.UUID, file_id: str) -> Iterable[bytes]:
    credentials(environ, workspace)
    conn = connection()
    params = {"workspace_id": workspace, "file_id": uuid.UUID(file_id), "length": CHUNK}
    found = conn.execute(OPEN_FETCHABLE_SQL, params, binary=True).fetchone()
    if found is None:
        raise Answer("404 Not Found")
    conn.execute(MARK_FETCHED_SQL, params)
    filename, mimetype, length, first = found[4], found[5], found[10], found[11]
    headers = [
        ("Content-Type", mimetype or "application/octet-stream"),
        ("Content-Length", str(length)),
        ("Content-Disposition", f'attachment; filename="{filename}"'),
    ]
    return headers, _chunks(conn, params["file_id"], first, length)  # type: ignore[return-value]


def _chunks(
    conn: psycopg.Connection, file_id: uuid.UUID, first: bytes, length: int
) -> Iterator[bytes]:
    sent = len(first)
    yield first
    while sent < length:
        params = {"file_id": file_id, "start": sent + 1, "length": CHUNK}
        (chunk,) = conn.execute(CHUNK_SQL, params, binary=True).fetchone()
        yield chunk
        sent += len(chunk)


def upload(environ: dict[str, Any], workspace: uuid.UUID) -> bytes:
    found = credentials(environ, workspace)
    if found[2] != "poll":
        raise Answer("422 Unprocessable Entity")
    boundary = environ["CONTENT_TYPE"].split("boundary=", 1)[1].encode()
    remaining = int(environ["CONTENT_LENGTH"])
    conn = connection()
    # The quotas' checks, as the service makes them (limits far above what the bench reaches):
    # before the body is read, this window's uploads and the bytes stored.
    uploads = {"workspace_id": workspace, "quota": "uploads", "window_seconds": _QUOTA_WINDOW}
    conn.execute(USAGE_READ_SQL, uploads).fetchone()
    conn.execute(STORED_BYTES_SQL, {"workspace_id": workspace}).fetchone()
    parts = []
    try:
        for name, mimetype, spool, size in file_parts(environ["wsgi.input"], remaining, boundary):
            parts.append((name, mimetype, spool, size))
        stored = []
        with conn.transaction():
            for name, mimetype, spool, size in parts:
                file_id = uuid.uuid4()
                _store(conn, workspace, file_id, name, mimetype, spool, size)
                stored.append(
                    (str(file_id), f"platform-pending:{workspace}/{file_id}", name, mimetype, size)
                )
            # After the bytes: charge the files, then count the stored bytes under the lock.
            conn.execute(USAGE_CHARGE_SQL, {**uploads, "amount": len(stored)}).fetchone()
            lock = {"lock_class": QUOTA_LOCK_CLASS, "workspace_id": workspace}
            conn.execute(WORKSPACE_LOCK_SQL, lock)
            conn.execute(STORED_BYTES_SQL, {"workspace_id": workspace}).fetchone()
            conn.execute(
                ACTIVITY_SQL,
                {
                    "workspace": workspace,
                    "file_ids": [s[0] for s in stored],
                    "uris": [s[1] for s in stored],
                    "names": [s[2] for s in stored],
                    "mimetypes": [s[3] for s in stored],
                    "sizes": [s[4] for s in stored],
                },
            )
    finally:
        for part in parts:
            part[2].close()
    files = [{"uri": s[1], "name": s[2], "mimeType": s[3], "size": s[4]} for s in stored]
    return encode({"files": files})


def _store(
    conn: psycopg.Connection,
    workspace: uuid.UUID,
    file_id: uuid.UUID,
    name: str,
    mimetype: str,
    spool: IO[bytes],
    size: int,
) -> None:
    """What the service does: one INSERT up to a chunk; above, the row's clock, then a binary
    COPY with the bytes in 1 MiB writes."""
    spool.seek(0)
    if size <= CHUNK:
        params = {
            "file_id": file_id,
            "workspace_id": workspace,
            "content": spool.read(size),
            # The bytes are inline, as the service stores them without a bucket.
            "storage_key": None,
            "content_sha256": None,
            "size_bytes": size,
            "filename": name,
            "mimetype": mimetype,
            "ttl": _TTL,
        }
        conn.execute(INSERT_SQL, params)
        return
    cursor = conn.cursor()
    cursor.execute(ROW_CLOCK_SQL, {"ttl": _TTL}, binary=True)
    result = cursor.pgresult
    assert result is not None
    fields = (
        file_id.bytes,
        workspace.bytes,
        struct.pack("!q", size),
        name.encode(),
        mimetype.encode(),
        bytes(result.get_value(0, 0) or b""),
        bytes(result.get_value(0, 1) or b""),
    )
    head = bytearray(_COPY_HEAD)
    for field in fields:
        head += struct.pack("!i", len(field)) + field
    head += struct.pack("!i", size)
    with cursor.copy(COPY_SQL) as copy:
        copy.write(head)
        while chunk := spool.read(CHUNK):
            copy.write(chunk)
        copy.write(struct.pack("!h", -1))
