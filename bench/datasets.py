"""Generated data: pending_uploads tables (1 KiB or TOAST-sized rows) and the phantom-busy set.

Timestamps spread over about 18 hours: with identical timestamps every plan looks alike, and
the planner's choices would not be those of a real table. Rows cycle through 20 kinds by number:
- kind 0 (5 %): acked, 25-43 h ago (past the 24 h retention the bench sweeps with);
- kind 1 (5 %): never acked, expired 1-19 h ago;
- kinds 2-3 (10 %): acked in the last 18 h, inside retention;
- the rest: live, created in the last 18 h, expiring in 6-24 h.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from datetime import timedelta

import psycopg

UPLOAD_WORKSPACES = 1000
PHANTOM_MODULUS = 100  # workspace i is phantom-busy when i % 100 == 1 (1 %)
BUSY_MODULUS = 5  # busy with recent activity when i % 5 == 0 (20 %)

# One row's kind and timestamps, for i in 1..rows. With eligible false, kinds 0 and 1 become
# live rows, for the empty-sweep table.
ROW_TIMES_SQL = """
SELECT i, kind, created_at, acked_at,
       created_at + interval '24 hours' AS expires_at,
       CASE WHEN acked_at IS NOT NULL OR mod(i, 2) = 0
            THEN created_at + interval '1 minute' END AS fetched_at
  FROM (SELECT i, kind,
               CASE WHEN kind = 1 THEN anchor - interval '24 hours'
                    WHEN kind IN (0, 2, 3) THEN anchor - interval '10 minutes'
                    ELSE anchor END AS created_at,
               CASE WHEN kind IN (0, 2, 3) THEN anchor END AS acked_at
          FROM (SELECT i, kind,
                       CASE kind
                            WHEN 0 THEN now() - interval '25 hours' - f * interval '18 hours'
                            WHEN 1 THEN now() - interval '1 hour' - f * interval '18 hours'
                            ELSE now() - f * interval '18 hours' END AS anchor
                  FROM (SELECT i,
                               CASE WHEN %(eligible)s OR mod(i, 20) > 1 THEN mod(i, 20)
                                    ELSE mod(i, 20) + 4 END AS kind,
                               -- Knuth's multiplicative hash: a spread that is not random().
                               mod(i * 2654435761, 4294967296)::float8 / 4294967296 AS f
                          FROM generate_series(1, %(rows)s::bigint) AS i) AS a) AS b) AS c
"""

# Which of UPLOAD_WORKSPACES workspaces row i belongs to, as a fixed UUID.
WORKSPACE_OF_SQL = "('00000000-0000-4000-8000-' || lpad(to_hex(mod({i}, {n})), 12, '0'))::uuid"

INSERT_UPLOADS_SQL = f"""
INSERT INTO pending_uploads (file_id, workspace_id, content, size_bytes, filename, mimetype,
                             created_at, fetched_at, acked_at, expires_at)
SELECT gen_random_uuid(), {WORKSPACE_OF_SQL.format(i="t.i", n=UPLOAD_WORKSPACES)},
       -- 1 KiB that differs per row (md5 of the row number, repeated 64 times).
       decode(repeat(md5(t.i::text), 64), 'hex'), 1024,
       'file-' || t.i || '.bin', 'application/octet-stream',
       t.created_at, t.fetched_at, t.acked_at, t.expires_at
  FROM ({ROW_TIMES_SQL}) AS t
"""

# The same rows with their bytes in a bucket: content NULL, the key the S3 backend would give
# (<workspace_id>/<file_id>), and the SHA-256 of the 1 KiB the inline table holds.
INSERT_KEYED_UPLOADS_SQL = f"""
INSERT INTO pending_uploads (file_id, workspace_id, storage_key, content_sha256, size_bytes,
                             filename, mimetype, created_at, fetched_at, acked_at, expires_at)
SELECT k.file_id, k.workspace_id, k.workspace_id || '/' || k.file_id,
       sha256(decode(repeat(md5(k.i::text), 64), 'hex')), 1024,
       'file-' || k.i || '.bin', 'application/octet-stream',
       k.created_at, k.fetched_at, k.acked_at, k.expires_at
  FROM (SELECT gen_random_uuid() AS file_id,
               {WORKSPACE_OF_SQL.format(i="t.i", n=UPLOAD_WORKSPACES)} AS workspace_id, t.*
          FROM ({ROW_TIMES_SQL}) AS t) AS k
"""

# The TOAST rows arrive by COPY with default timestamps; this gives them the same spread.
UPDATE_TIMES_SQL = f"""
UPDATE pending_uploads AS p
   SET created_at = t.created_at, fetched_at = t.fetched_at,
       acked_at = t.acked_at, expires_at = t.expires_at
  FROM ({ROW_TIMES_SQL}) AS t
 WHERE p.filename = 'file-' || t.i || '.bin'
"""


def fill_uploads(conn: psycopg.Connection, rows: int, *, eligible: bool = True) -> None:
    """Insert ``rows`` rows of 1 KiB, 10 % eligible for the sweep unless ``eligible`` is false."""
    conn.execute(INSERT_UPLOADS_SQL, {"rows": rows, "eligible": eligible})


def fill_keyed_uploads(conn: psycopg.Connection, rows: int) -> None:
    """The rows of fill_uploads with their bytes in a bucket (the objects are put separately)."""
    conn.execute(INSERT_KEYED_UPLOADS_SQL, {"rows": rows, "eligible": True})


def fill_toast_uploads(conn: psycopg.Connection, rows: int, size: int) -> None:
    """Insert ``rows`` rows of ``size`` random bytes each, which TOAST cannot compress."""
    pool = random.Random(5).randbytes(max(64 * 1024 * 1024, 4 * size))
    spread = random.Random(7)
    with conn.cursor() as cur:
        copy_sql = (
            "COPY pending_uploads (workspace_id, content, size_bytes, filename)"
            " FROM STDIN (FORMAT BINARY)"
        )
        with cur.copy(copy_sql) as copy:
            copy.set_types(["uuid", "bytea", "int8", "text"])
            for i in range(1, rows + 1):
                # A different window of the random pool per row: no two rows share content.
                start = spread.randrange(0, len(pool) - size)
                workspace = uuid.UUID(f"00000000-0000-4000-8000-{i % UPLOAD_WORKSPACES:012x}")
                copy.write_row([workspace, pool[start : start + size], size, f"file-{i}.bin"])
    conn.execute(UPDATE_TIMES_SQL, {"rows": rows, "eligible": True})


WORKSPACE_ID_SQL = "('00000000-0000-4000-9000-' || lpad(to_hex({i}), 12, '0'))::uuid"

INSERT_WORKSPACES_SQL = f"""
INSERT INTO workspaces (id, name, status, delivery_mode, url, active_tasks, current_task,
                        token_hash, created_at, updated_at)
SELECT {WORKSPACE_ID_SQL.format(i="i")}, 'ws-' || i, 'online', 'poll', NULL,
       CASE WHEN mod(i, {PHANTOM_MODULUS}) = 1 OR mod(i, {BUSY_MODULUS}) = 0
            THEN 1 + mod(i, 3) ELSE 0 END,
       CASE WHEN mod(i, {PHANTOM_MODULUS}) = 1 OR mod(i, {BUSY_MODULUS}) = 0
            THEN 'task-' || i ELSE '' END,
       repeat('0', 64), now() - interval '18 hours', now()
  FROM generate_series(1, %(workspaces)s::bigint) AS i
"""

# Activity spread over 18 h in id order; a phantom-busy workspace's rows are all older than
# the stale window (plus an hour of margin), so exactly those workspaces are phantom.
INSERT_ACTIVITY_SQL = f"""
INSERT INTO activity_logs (workspace_id, activity_type, method, summary, request_body, status,
                           created_at)
SELECT {WORKSPACE_ID_SQL.format(i="w")}, 'a2a_receive', 'message/send', 'bench', NULL, 'ok',
       CASE WHEN mod(w, {PHANTOM_MODULUS}) = 1 THEN least(t, now() - %(old)s::interval)
            ELSE t END
  FROM (SELECT 1 + mod(j * 2654435761, %(workspaces)s) AS w,
               now() - (%(rows)s - j)::float8 / %(rows)s * interval '18 hours' AS t
          FROM generate_series(1, %(rows)s::bigint) AS j) AS a
"""

# One recent row per busy (not phantom) workspace, inside the stale window.
INSERT_RECENT_ACTIVITY_SQL = f"""
INSERT INTO activity_logs (workspace_id, activity_type, method, summary, status, created_at)
SELECT {WORKSPACE_ID_SQL.format(i="i")}, 'heartbeat', '', 'bench', 'ok',
       now() - mod(i, 60) * interval '1 second'
  FROM generate_series(1, %(workspaces)s::bigint) AS i
 WHERE mod(i, {BUSY_MODULUS}) = 0
"""


def fill_phantom(
    conn: psycopg.Connection, workspaces: int, activity_rows: int, stale_after: timedelta
) -> int:
    """Insert the workspaces and their activity; return how many are phantom-busy."""
    old = stale_after + timedelta(hours=1)
    conn.execute(INSERT_WORKSPACES_SQL, {"workspaces": workspaces})
    # Every activity row points at a workspace inserted just above; skipping the per-row
    # foreign-key trigger only makes loading millions of rows faster (superusers only).
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("SET session_replication_role = replica")
    recent = workspaces // BUSY_MODULUS
    conn.execute(
        INSERT_ACTIVITY_SQL,
        {"workspaces": workspaces, "rows": max(activity_rows - recent, 0), "old": old},
    )
    conn.execute(INSERT_RECENT_ACTIVITY_SQL, {"workspaces": workspaces})
    conn.execute("RESET session_replication_role")
    return (workspaces + PHANTOM_MODULUS - 1) // PHANTOM_MODULUS
