"""The table contract as PostgreSQL holds it: indexes, defaults, CHECKs and foreign keys."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction

from tests.helpers import run_sql

pytestmark = pytest.mark.django_db


def indexdef(name: str) -> str:
    rows = run_sql("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
    assert len(rows) == 1, f"index {name} is missing"
    return rows[0][0]


@pytest.mark.parametrize(
    ("name", "definition"),
    [
        (
            "pending_uploads_ws_unacked_idx",
            "ON public.pending_uploads USING btree (workspace_id, created_at)"
            " WHERE (acked_at IS NULL)",
        ),
        (
            "pending_uploads_expiry_idx",
            "ON public.pending_uploads USING btree (expires_at, file_id) WHERE (acked_at IS NULL)",
        ),
        (
            "pending_uploads_acked_idx",
            "ON public.pending_uploads USING btree (acked_at) WHERE (acked_at IS NOT NULL)",
        ),
        (
            "activity_logs_ws_created_idx",
            "ON public.activity_logs USING btree (workspace_id, created_at, id)",
        ),
        ("activity_logs_ws_id_idx", "ON public.activity_logs USING btree (workspace_id, id)"),
    ],
)
def test_named_indexes_with_their_predicates(name, definition):
    assert indexdef(name) == f"CREATE INDEX {name} {definition}"


def column_default(table: str, column: str) -> str | None:
    rows = run_sql(
        """
        SELECT column_default FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = %s AND column_name = %s
        """,
        [table, column],
    )
    assert len(rows) == 1, f"{table}.{column} is missing"
    return rows[0][0]


NOW = r"(now\(\)|CURRENT_TIMESTAMP)"


@pytest.mark.parametrize(
    ("table", "column", "pattern"),
    [
        ("pending_uploads", "file_id", r"gen_random_uuid\(\)"),
        ("pending_uploads", "created_at", NOW),
        ("pending_uploads", "expires_at", rf"\({NOW} \+ '(1 day|24:00:00)'::interval\)"),
        ("pending_uploads", "mimetype", r"''::text"),
        ("pending_uploads", "fetched_at", None),
        ("pending_uploads", "acked_at", None),
        ("workspaces", "active_tasks", r"0"),
        ("workspaces", "current_task", r"''::text"),
        ("workspaces", "delivery_mode", r"'push'::text"),
        ("activity_logs", "created_at", NOW),
        ("inbox_delivery_state", "last_acked_seq", r"0"),
        ("inbox_delivery_state", "updated_at", NOW),
    ],
)
def test_column_defaults_live_in_the_database(table, column, pattern):
    default = column_default(table, column)
    if pattern is None:
        assert default is None
    else:
        assert default is not None
        assert re.fullmatch(pattern, default), default


def test_plain_sql_insert_gets_the_database_defaults():
    ((file_id, created_at, expires_at, mimetype, fetched_at, acked_at, now),) = run_sql(
        """
        INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename)
        VALUES (%s, decode('cafe', 'hex'), 2, 'plain.bin')
        RETURNING file_id, created_at, expires_at, mimetype, fetched_at, acked_at, now()
        """,
        [uuid.uuid4()],
    )
    assert isinstance(file_id, uuid.UUID)
    assert created_at == now
    assert expires_at - created_at == timedelta(hours=24)
    assert mimetype == ""
    assert (fetched_at, acked_at) == (None, None)
    # Each row gets its own server-generated id.
    ((second_id,),) = run_sql(
        """
        INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename)
        VALUES (%s, decode('00', 'hex'), 1, 'again.bin') RETURNING file_id
        """,
        [uuid.uuid4()],
    )
    assert second_id != file_id


def insert_upload(size_bytes: int, filename: str) -> None:
    run_sql(
        """
        INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename)
        VALUES (%s, decode('00', 'hex'), %s, %s)
        """,
        [uuid.uuid4(), size_bytes, filename],
    )


def assert_check_violation(constraint: str, statement, *args) -> None:
    """Run ``statement`` and expect PostgreSQL itself to reject it with ``constraint``."""
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        statement(*args)
    cause = caught.value.__cause__
    assert cause.sqlstate == "23514"
    assert cause.diag.constraint_name == constraint


# (case, size_bytes, filename, violated constraint or None when accepted)
UPLOAD_CHECKS = [
    ("over the cap", 104_857_601, "a.bin", "pending_uploads_size_bytes_check"),
    ("exactly the cap", 104_857_600, "a.bin", None),
    ("zero bytes", 0, "a.bin", "pending_uploads_size_bytes_check"),
    ("negative size", -1, "a.bin", "pending_uploads_size_bytes_check"),
    ("one byte", 1, "a.bin", None),
    ("empty filename", 1, "", "pending_uploads_filename_check"),
    ("one-character filename", 1, "a", None),
    ("100-character filename", 1, "n" * 100, None),
    ("101-character filename", 1, "n" * 101, "pending_uploads_filename_check"),
]


@pytest.mark.parametrize(
    ("size_bytes", "filename", "constraint"),
    [case[1:] for case in UPLOAD_CHECKS],
    ids=[case[0] for case in UPLOAD_CHECKS],
)
def test_pending_uploads_checks_are_enforced_by_postgresql(size_bytes, filename, constraint):
    if constraint is None:
        insert_upload(size_bytes, filename)
        assert run_sql("SELECT count(*) FROM pending_uploads")[0][0] == 1
    else:
        assert_check_violation(constraint, insert_upload, size_bytes, filename)
        assert run_sql("SELECT count(*) FROM pending_uploads")[0][0] == 0


def test_negative_active_tasks_is_rejected_by_postgresql(register):
    ws = register("busy")
    assert_check_violation(
        "workspaces_active_tasks_check",
        run_sql,
        "UPDATE workspaces SET active_tasks = -1 WHERE id = %s",
        [ws.id],
    )
    assert run_sql("SELECT active_tasks FROM workspaces WHERE id = %s", [ws.id]) == [(0,)]


def foreign_keys(table: str) -> list[tuple[str, str, str]]:
    return run_sql(
        """
        SELECT confrelid::regclass::text, confdeltype::text, pg_get_constraintdef(oid)
          FROM pg_constraint
         WHERE conrelid = %s::regclass AND contype = 'f'
        """,
        [table],
    )


def test_activity_logs_cascade_is_declared_in_the_database(register):
    ((target, on_delete, definition),) = foreign_keys("activity_logs")
    assert (target, on_delete) == ("workspaces", "c")
    assert definition.startswith("FOREIGN KEY (workspace_id) REFERENCES workspaces(id)")
    gone = register("gone")
    stays = register("stays")
    for ws in (gone, stays):
        run_sql(
            "INSERT INTO activity_logs (workspace_id, activity_type) VALUES (%s, 'x'), (%s, 'y')",
            [ws.id, ws.id],
        )
    run_sql("DELETE FROM workspaces WHERE id = %s", [gone.id])
    counts = dict(run_sql("SELECT workspace_id, count(*) FROM activity_logs GROUP BY workspace_id"))
    assert counts == {stays.id: 2}


def test_inbox_delivery_state_goes_with_its_workspace_in_plain_sql(register):
    ((target, on_delete, definition),) = foreign_keys("inbox_delivery_state")
    assert (target, on_delete) == ("workspaces", "c")
    assert definition.startswith("FOREIGN KEY (workspace_id) REFERENCES workspaces(id)")
    gone, stays = register("gone"), register("stays")
    for ws in (gone, stays):
        # Plain SQL with the database's defaults, as an operator's script would write it.
        run_sql("INSERT INTO inbox_delivery_state (workspace_id) VALUES (%s)", [ws.id])
    assert run_sql("SELECT DISTINCT last_acked_seq FROM inbox_delivery_state") == [(0,)]
    run_sql("DELETE FROM workspaces WHERE id = %s", [gone.id])
    assert run_sql("SELECT workspace_id FROM inbox_delivery_state") == [(stays.id,)]


def test_pending_uploads_has_no_foreign_key(register):
    assert foreign_keys("pending_uploads") == []
    # Rows outlive their workspace: a plain delete of the workspace leaves them alone.
    ws = register("owner")
    insert_upload(1, "orphan.bin")
    run_sql(
        "INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename)"
        " VALUES (%s, decode('00', 'hex'), 1, 'kept.bin')",
        [ws.id],
    )
    run_sql("DELETE FROM workspaces WHERE id = %s", [ws.id])
    assert run_sql("SELECT count(*) FROM pending_uploads")[0][0] == 2


# The first key of the feed's advisory lock ('actl'); the second is hashtext(workspace_id).
FEED_LOCK_CLASS = 0x6163746C


def test_activity_ids_come_from_the_sequence_whatever_the_insert_names(register):
    ws = register("agent")
    ((first,),) = run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type) VALUES (%s, 'x') RETURNING id",
        [ws.id],
    )
    # An explicit id, even a free one, is replaced: only the trigger hands out ids.
    ((second,),) = run_sql(
        "INSERT INTO activity_logs (id, workspace_id, activity_type) VALUES (%s, %s, 'y') "
        "RETURNING id",
        [first + 1000, ws.id],
    )
    assert first < second < first + 1000
    assert run_sql("SELECT max(id) FROM activity_logs") == [(second,)]


def test_an_activity_insert_holds_its_workspaces_feed_lock_until_the_transaction_ends(register):
    ws, other = register("agent"), register("other")
    run_sql("INSERT INTO activity_logs (workspace_id, activity_type) VALUES (%s, 'x')", [ws.id])

    held = run_sql(
        """
        SELECT objid::int FROM pg_locks
         WHERE locktype = 'advisory' AND classid::int = %s AND objsubid = 2
           AND pid = pg_backend_pid() AND granted
        """,
        [FEED_LOCK_CLASS],
    )
    expected = run_sql("SELECT hashtext(%s::text)", [ws.id])
    assert held == expected
    assert held != run_sql("SELECT hashtext(%s::text)", [other.id])
