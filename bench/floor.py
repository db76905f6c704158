"""The floor: the service's per-request hot paths as plain WSGI on psycopg, with no framework.

Issue 20 measures the service against this. Each route does the same work as the service's
(the same authentication, both token tiers compared; the same statements or fewer; the same
JSON), written as the best raw code: prepared statements, binary results where the service
reads binary, one connection per thread as gunicorn's gthread workers give Django. Run it
under gunicorn with gunicorn.conf.py's settings (``bench.throughput`` does):

    gunicorn -c gunicorn.conf.py bench.floor:application

It serves only what the bench sends; anything else is a plain 404.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import struct
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import IO, Any
from urllib.parse import parse_qsl

import django
import psycopg

# The service's SQL text lives in its managers, which load with Django's app registry; the
# floor loads it once, at start, to read those constants. No Django code runs per request.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
django.setup()

from molecule.attachments import attachments_from_request_body  # noqa: E402
from molecule.managers import CREDENTIALS_SQL, FEED_AFTER_SQL, INBOX_ACK_SQL  # noqa: E402
from molecule.usage import (  # noqa: E402
    QUOTA_LOCK_CLASS,
    USAGE_CHARGE_SQL,
    USAGE_READ_SQL,
    WORKSPACE_LOCK_SQL,
)
from pending_uploads.managers import ACK_SQL, MARK_FETCHED_SQL  # noqa: E402
from pending_uploads.managers.content import INSERT_SQL, OPEN_FETCHABLE_SQL  # noqa: E402
from pending_uploads.storage.postgres import CHUNK_SQL, COPY_SQL, ROW_CLOCK_SQL  # noqa: E402

CHUNK = 1024 * 1024
# The quota window the service counts in (QUOTA_WINDOW's default), in seconds.
_QUOTA_WINDOW = 3600
# What PendingUpload.objects.stored_bytes asks (the service's ORM aggregate, as SQL).
STORED_BYTES_SQL = (
    "SELECT coalesce(sum(size_bytes), 0) FROM pending_uploads WHERE workspace_id = %(workspace_id)s"
)
_local = threading.local()
_ABSENT_HASH = "0" * 64
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
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
_BIGINT_MAX = 2**63 - 1
_UNUSED_FILTERS = dict.fromkeys(("source", "peer_id", "before", "since_seconds"))


class Answer(Exception):
    def __init__(self, status: str, body: bytes = b"") -> None:
        self.status = status
        self.body = body


def connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        # prepare_threshold=0: every statement is prepared on its first execution.
        conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, prepare_threshold=0)
        _local.conn = conn
    return conn


def encode(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPES).encode()


def authenticated(environ: dict[str, Any], stored: str | None, previous: str | None) -> bool:
    """The service's rule: every tier (the token, the one a rotation replaced, the operator's)
    compared every time, in constant time."""
    scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Answer("401 Unauthorized")
    digest = hashlib.sha256(token.encode()).hexdigest()
    admin = os.environ.get("ADMIN_TOKEN", "")
    own = hmac.compare_digest(digest, stored or _ABSENT_HASH)
    old = hmac.compare_digest(digest, previous or _ABSENT_HASH)
    operator = hmac.compare_digest(
        digest, hashlib.sha256(admin.encode()).hexdigest() if admin else _ABSENT_HASH
    )
    return own or old or operator


def admitted(environ: dict[str, Any], found: Any) -> None:
    """401 unless the token opens the workspace (id, status, delivery_mode, token_hash, the
    live previous token's hash)."""
    usable = found is not None and found[0] is not None and found[1] != "removed"
    stored, previous = (found[3], found[4]) if usable else (None, None)
    if not authenticated(environ, stored, previous) or not usable:
        raise Answer("401 Unauthorized")


def credentials(environ: dict[str, Any], workspace: uuid.UUID) -> tuple[Any, ...]:
    params = {"workspace_id": workspace}
    found = connection().execute(CREDENTIALS_SQL, params, binary=True).fetchone()
    admitted(environ, found)
    return found


def poll(environ: dict[str, Any], workspace: uuid.UUID) -> bytes:
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    peer_info = "peer_info" in {flag.strip() for flag in query.get("include", "").split(",")}
    params = {
        **_UNUSED_FILTERS,
        "workspace_id": workspace,
        "after_id": int(query["since_id"]),
        "id_ceiling": _BIGINT_MAX,
        "activity_type": query.get("type") or None,
        "limit": min(int(query.get("limit", 100)), 500),
        "peer_info": peer_info,
    }
    rows = connection().execute(FEED_AFTER_SQL, params, binary=True).fetchall()
    admitted(environ, rows[0] if rows else None)
    if not rows[0][5]:
        raise Answer("410 Gone")
    page = []
    text_id = str(workspace)
    for row in rows:
        if row[6] is None:
            break
        source = row[8]
        item = {
            "id": row[6],
            "workspace_id": text_id,
            "activity_type": row[7],
            "source_id": str(source) if source else None,
            "target_id": str(row[9]) if row[9] else None,
            "method": row[10],
            "summary": row[11],
            "request_body": row[12],
            "response_body": row[13],
            "duration_ms": row[14],
            "status": row[15],
            "error_detail": row[16],
            "created_at": row[17].isoformat(),
            "seq": row[6],
        }
        if peer_info:
            if row[18]:
                item["peer_name"] = row[18]
            attachments = attachments_from_request_body(row[12])
            if attachments:
                item["attachments"] = attachments
        page.append(item)
    return encode(page)


def ack(environ: dict[str, Any], workspace: uuid.UUID, file_id: str) -> bytes:
    credentials(environ, workspace)
    params = {"workspace_id": workspace, "file_id": uuid.UUID(file_id)}
    unacked, stamped = connection().execute(ACK_SQL, params).fetchone()
    if not stamped and not unacked:
        raise Answer("404 Not Found")
    return b'{"acked":true}' if stamped else b'{"acked":true,"raced":true}'


def inbox_ack(environ: dict[str, Any], workspace: uuid.UUID) -> bytes:
    credentials(environ, workspace)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seq = json.loads(environ["wsgi.input"].read(length))["acked_seq"]
    params = {"workspace_id": workspace, "acked_seq": seq}
    (stored,) = connection().execute(INBOX_ACK_SQL, params).fetchone()
    return b'{"last_acked_seq":%d}' % stored


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
        for name, mimetype, spool, size in _parts(environ["wsgi.input"], remaining, boundary):
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


def _parts(
    stream: IO[bytes], remaining: int, boundary: bytes
) -> Iterator[tuple[str, str, IO[bytes], int]]:
    """Each file part of a multipart body, spooled to a temporary file as it streams in.

    Binary COPY needs a field's length before its bytes, and a part's length is known only at
    its end: spooling is what makes COPY possible, as it is for the service.
    """
    delimiter = b"\r\n--" + boundary
    buffer = b"\r\n"
    done = False

    def fill() -> bool:
        nonlocal buffer, remaining
        if not remaining:
            return False
        data = stream.read(min(CHUNK, remaining))
        remaining -= len(data)
        buffer += data
        return bool(data)

    while not done:
        while (start := buffer.find(delimiter)) < 0 and fill():
            pass
        buffer = buffer[start + len(delimiter) :]
        while len(buffer) < 2 and fill():
            pass
        if buffer.startswith(b"--"):
            return
        while (end := buffer.find(b"\r\n\r\n")) < 0 and fill():
            pass
        headers = buffer[:end].decode("latin-1")
        buffer = buffer[end + 4 :]
        name = re.search(r'filename="([^"]*)"', headers).group(1)  # type: ignore[union-attr]
        kind = re.search(r"Content-Type: *([^\r\n;]+)", headers, re.IGNORECASE)
        mimetype = kind.group(1).strip() if kind else "application/octet-stream"
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by upload() once stored
        size = 0
        keep = len(delimiter) - 1
        while True:
            cut = buffer.find(delimiter)
            if cut >= 0:
                spool.write(buffer[:cut])
                size += cut
                buffer = buffer[cut:]
                break
            if len(buffer) > keep:
                spool.write(buffer[:-keep])
                size += len(buffer) - keep
                buffer = buffer[-keep:]
            if not fill():
                done = True
                break
        yield name, mimetype, spool, size


def ready(environ: dict[str, Any]) -> bytes:
    return b"{}"


ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
    ("GET", re.compile(r"/workspaces/([^/]+)/activity"), poll),
    ("POST", re.compile(r"/workspaces/([^/]+)/activity/ack"), inbox_ack),
    ("POST", re.compile(r"/workspaces/([^/]+)/chat/uploads"), upload),
    ("GET", re.compile(r"/workspaces/([^/]+)/pending-uploads/([^/]+)/content"), content),
    ("POST", re.compile(r"/workspaces/([^/]+)/pending-uploads/([^/]+)/ack"), ack),
    ("GET", re.compile(r"/ready"), ready),
]


def route(method: str, path: str) -> tuple[Callable[..., Any], list[Any]] | None:
    """The handler for ``method`` and ``path``, and its arguments (the workspace id first)."""
    for allowed, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and method == allowed:
            groups = match.groups()
            return handler, [uuid.UUID(groups[0]), *groups[1:]] if groups else []
    return None


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    found = route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
    if found is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error":"not found"}']
    handler, args = found
    try:
        answer = handler(environ, *args)
    except Answer as exc:
        start_response(exc.status, [("Content-Type", "application/json")])
        return [exc.body]
    if isinstance(answer, tuple):
        headers, body = answer
        start_response("200 OK", headers)
        return body
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]
