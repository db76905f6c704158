"""The activity feed: the poll and its ack."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl

from bench.floor.auth import admitted, credentials
from bench.floor.wire import Answer, connection, encode
from molecule.attachments import attachments_from_request_body
from molecule.managers import FEED_AFTER_SQL, INBOX_ACK_SQL

_BIGINT_MAX = 2**63 - 1
_UNUSED_FILTERS = dict.fromkeys(("source", "peer_id", "before", "since_seconds"))


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


def inbox_ack(environ: dict[str, Any], workspace: uuid.UUID) -> bytes:
    credentials(environ, workspace)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seq = json.loads(environ["wsgi.input"].read(length))["acked_seq"]
    params = {"workspace_id": workspace, "acked_seq": seq}
    (stored,) = connection().execute(INBOX_ACK_SQL, params).fetchone()
    return b'{"last_acked_seq":%d}' % stored
