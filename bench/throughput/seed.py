"""The rows each scenario needs, made in SQL, and how many of them a run applied."""

from __future__ import annotations

import hashlib
import uuid

from bench.database import BenchDatabases

# The page poll returns this many upload rows (a burst of files), with include=peer_info.
PAGE_ROWS = 10

# Rows as uploads_receive writes them: a canvas row addressed to the workspace, the manifest in
# request_body.
SEED_ACTIVITY_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, source_id, target_id, method, summary,
                           request_body, status)
SELECT %(workspace)s, 'a2a_receive', NULL, %(workspace)s, 'chat_upload_receive',
       'chat_upload_receive: file-' || n || '.png',
       jsonb_build_object('file_id', gen_random_uuid(), 'uri', 'platform-pending:x/' || n,
                          'name', 'file-' || n || '.png', 'mimeType', 'image/png',
                          'size', 1000 + n),
       'ok'
  FROM generate_series(0, %(rows)s) AS n
RETURNING id
"""
SEED_UPLOADS_SQL = """
INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype)
SELECT %(workspace)s, %(content)s, length(%(content)s), 'ack-' || n || '.bin', 'text/plain'
  FROM generate_series(1, %(rows)s) AS n
RETURNING file_id
"""
SEED_WORKSPACE_SQL = """
INSERT INTO workspaces (id, name, delivery_mode, token_hash) VALUES (%s, %s, 'poll', %s)
"""
ACKED_SQL = "SELECT count(*) FROM pending_uploads WHERE file_id = ANY(%s) AND acked_at IS NOT NULL"
INBOX_MARKS_SQL = (
    "SELECT count(*) FROM inbox_delivery_state WHERE workspace_id = ANY(%s) AND last_acked_seq > 0"
)


def make_workspaces(db: BenchDatabases, count: int, prefix: str) -> list[tuple[uuid.UUID, str]]:
    """Poll-mode workspaces made in SQL, with their bearer tokens."""
    made = []
    with db.connect() as conn:
        for number in range(count):
            workspace_id, token = uuid.uuid4(), uuid.uuid4().hex + uuid.uuid4().hex
            digest = hashlib.sha256(token.encode()).hexdigest()
            conn.execute(SEED_WORKSPACE_SQL, [workspace_id, f"{prefix}-{number}", digest])
            made.append((workspace_id, token))
    return made


def applied(db: BenchDatabases, sql: str, keys: dict[str, list[uuid.UUID]]) -> dict[str, int]:
    with db.connect() as conn:
        return {side: conn.execute(sql, [keys[side]]).fetchone()[0] for side in keys}
