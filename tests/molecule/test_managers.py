"""Workspace and ActivityLog managers on a real PostgreSQL: auth, phantom-busy reset, queries."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from molecule.managers import (
    PHANTOM_BUSY_PREVIEW_SQL,
    PHANTOM_BUSY_RESET_SQL,
    FeedFilters,
    FeedPage,
    WorkspaceRef,
)
from molecule.models import ActivityLog, InboxDeliveryState, Workspace
from molecule.services.activity import activity_append
from scheduler.metrics import phantom_busy_resets
from tests.helpers import run_sql

STALE_AFTER = timedelta(minutes=10)


def feed(workspace_id: uuid.UUID, since_id: int | str | None = None, **filters: Any) -> FeedPage:
    since = None if since_id is None else str(since_id)
    return ActivityLog.objects.feed(workspace_id, since_id=since, filters=FeedFilters(**filters))


def feed_ids(workspace_id: uuid.UUID, since_id: int | None = None, **filters: Any) -> list[int]:
    page = feed(workspace_id, since_id, **filters)
    assert page.cursor_found
    return [row.id for row in page.rows]


RESETS = phantom_busy_resets.name


def db_now() -> datetime:
    return run_sql("SELECT now()")[0][0]


def add_activity(workspace_id: uuid.UUID, age: str) -> None:
    """Append an activity row created ``age`` (an SQL interval) before the database's now()."""
    run_sql(
        """
        INSERT INTO activity_logs (workspace_id, activity_type, created_at)
        VALUES (%s, 'a2a_receive', now() - %s::interval)
        """,
        [workspace_id, age],
    )


def backdate_updated_at(workspace_id: uuid.UUID) -> None:
    run_sql(
        "UPDATE workspaces SET updated_at = now() - interval '1 hour' WHERE id = %s",
        [workspace_id],
    )


def state(workspace_id: uuid.UUID) -> tuple[int, str, datetime]:
    ws = Workspace.objects.get(pk=workspace_id)
    return ws.active_tasks, ws.current_task, ws.updated_at


# (case, workspace fields, activity age as an SQL interval or None, reset?)
PHANTOM_CASES = [
    ("busy, no activity at all", {"active_tasks": 2}, None, True),
    ("busy, only stale activity", {"active_tasks": 1}, "1 hour", True),
    ("busy, recent activity", {"active_tasks": 3}, "1 minute", False),
    # "Newer than now() - stale_after" is strict: activity exactly at the threshold is silence.
    ("busy, activity exactly at the threshold", {"active_tasks": 1}, "10 minutes", True),
    (
        "busy, activity one microsecond inside the threshold",
        {"active_tasks": 1},
        "9 minutes 59.999999 seconds",
        False,
    ),
    ("busy, offline", {"active_tasks": 1, "status": "offline"}, None, True),
    ("busy, removed", {"active_tasks": 4, "status": "removed"}, None, False),
    ("idle", {"active_tasks": 0}, None, False),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "activity_age", "reset"),
    [case[1:] for case in PHANTOM_CASES],
    ids=[case[0] for case in PHANTOM_CASES],
)
def test_reset_phantom_busy_cases(register, fields, activity_age, reset):
    ws = register("agent", current_task="summarising", **fields)
    if activity_age is not None:
        add_activity(ws.id, activity_age)
    backdate_updated_at(ws.id)
    before = state(ws.id)
    result = Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS)
    if reset:
        assert result == [WorkspaceRef(ws.id, "agent")]
        assert state(ws.id) == (0, "", db_now())
    else:
        assert result == []
        assert state(ws.id) == before


@pytest.mark.django_db
def test_activity_of_another_workspace_does_not_protect(register):
    silent = register("silent", active_tasks=2, current_task="stuck")
    chatty = register("chatty", active_tasks=1, current_task="working")
    add_activity(chatty.id, "1 second")
    result = Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS)
    assert result == [WorkspaceRef(silent.id, "silent")]
    assert state(silent.id)[:2] == (0, "")
    assert state(chatty.id)[:2] == (1, "working")


@pytest.mark.django_db
def test_reset_returns_every_reset_workspace_sorted(register):
    names = ["charlie", "alpha", "bravo", "alpha"]
    created = [register(name, active_tasks=1) for name in names]
    register("idle")
    result = Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS)
    expected = sorted(
        (WorkspaceRef(ws.id, ws.workspace.name) for ws in created),
        key=lambda ref: (ref.name, ref.id),
    )
    assert result == expected
    # A second run finds nothing left to reset.
    assert Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS) == []


@pytest.mark.django_db
def test_stale_after_moves_the_threshold(register):
    ws = register("agent", active_tasks=1)
    add_activity(ws.id, "30 minutes")
    assert Workspace.objects.reset_phantom_busy(timedelta(hours=1), counter=RESETS) == []
    assert Workspace.objects.reset_phantom_busy(timedelta(minutes=29), counter=RESETS) == [
        WorkspaceRef(ws.id, "agent")
    ]


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_names_the_same_workspaces(register):
    stuck = [register(name, active_tasks=2, current_task="t") for name in ("b", "a")]
    alive = register("alive", active_tasks=1, current_task="t")
    add_activity(alive.id, "5 seconds")
    for ws in [*stuck, alive]:
        backdate_updated_at(ws.id)
    before = {ws.id: state(ws.id) for ws in [*stuck, alive]}
    preview = Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS, dry_run=True)
    assert {ws.id: state(ws.id) for ws in [*stuck, alive]} == before
    assert [ref.name for ref in preview] == ["a", "b"]
    assert Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS) == preview


# 2,000 busy workspaces with 20 activity rows each, a minute apart; only every tenth workspace
# has recent activity, so the statements must find it without reading all 40,000 rows.
PHANTOM_FILL_SQL = """
WITH ws AS (
    INSERT INTO workspaces (id, name, token_hash, active_tasks)
    SELECT gen_random_uuid(), 'busy-' || n, repeat('0', 64), 1 FROM generate_series(1, 2000) AS n
    RETURNING id, name
)
INSERT INTO activity_logs (workspace_id, activity_type, created_at)
SELECT ws.id, 'a2a_receive',
       now() - make_interval(mins => g + CASE WHEN right(ws.name, 1) = '0' THEN 0 ELSE 30 END)
  FROM ws, generate_series(1, 20) AS g
"""


def explain(sql: str, params: dict[str, Any]) -> str:
    return "\n".join(row[0] for row in run_sql("EXPLAIN " + sql, params))


@pytest.mark.django_db
def test_phantom_busy_statements_read_activity_through_an_index():
    run_sql(PHANTOM_FILL_SQL)
    run_sql("ANALYZE workspaces")
    run_sql("ANALYZE activity_logs")
    params = {"stale_after_seconds": STALE_AFTER.total_seconds(), "counter": "c"}

    for sql in (PHANTOM_BUSY_PREVIEW_SQL, PHANTOM_BUSY_RESET_SQL):
        plan = explain(sql, params)
        # Either probe per workspace or read only the recent rows: both through an index.
        assert "activity_logs_ws_created_idx" in plan or "activity_logs_created_idx" in plan, plan
        assert "Seq Scan on activity_logs" not in plan, plan
    # And what they find: the 1,800 workspaces whose last activity is 31 minutes old.
    assert (
        len(Workspace.objects.reset_phantom_busy(STALE_AFTER, counter=RESETS, dry_run=True)) == 1800
    )


@pytest.mark.django_db
def test_authenticate(register):
    ws = register("owner")
    other = register("other")
    assert Workspace.objects.authenticate(ws.id, ws.token) == ws.workspace
    assert Workspace.objects.authenticate(ws.id, other.token) is None
    assert Workspace.objects.authenticate(ws.id, ws.token + "x") is None
    assert Workspace.objects.authenticate(ws.id, "") is None
    assert Workspace.objects.authenticate(uuid.uuid4(), ws.token) is None
    # Only the hash is stored, so the stored value is never itself a valid token.
    assert Workspace.objects.authenticate(ws.id, ws.workspace.token_hash) is None


@pytest.mark.django_db
def test_credentials_read_only_what_authentication_and_the_views_use(register):
    ws = register("owner")

    found = Workspace.objects.credentials(ws.id)

    assert found == ws.workspace
    assert (found.status, found.delivery_mode, found.token_hash) == (
        "online",
        "poll",
        ws.workspace.token_hash,
    )
    # The token from before a rotation is read (only while its overlap lasts); the sealed
    # platform_inbound_secret never is.
    assert found.previous_token_hash is None
    assert found.get_deferred_fields() == {
        "name",
        "url",
        "active_tasks",
        "current_task",
        "previous_token_expires_at",
        "platform_inbound_secret_sealed",
        "created_at",
        "updated_at",
    }
    assert Workspace.objects.credentials(uuid.uuid4()) is None


@pytest.mark.django_db
def test_admit_compares_both_tiers_and_refuses_a_removed_workspaces_own_token(register):
    ws = register("owner")
    operator = "operator-token-of-at-least-some-length"
    removed = register("gone", status="removed")

    def admitted(found: Workspace | None, token: str) -> Any:
        workspace = Workspace.objects.admit(found, token, admin_token=operator)
        return None if workspace is None else workspace.by_admin_token

    assert admitted(Workspace.objects.credentials(ws.id), ws.token) is False
    assert admitted(Workspace.objects.credentials(ws.id), operator) is True
    assert admitted(Workspace.objects.credentials(removed.id), removed.token) is None
    assert admitted(Workspace.objects.credentials(removed.id), operator) is True
    assert admitted(None, operator) is None
    assert admitted(None, ws.token) is None


@pytest.mark.django_db
def test_count_active_excludes_removed(register):
    register("a")
    register("b", status="offline")
    register("c", status="removed")
    assert Workspace.objects.count_active() == 2


@pytest.mark.django_db
def test_with_last_activity_is_the_newest_activity_row(register):
    busy = register("busy")
    quiet = register("quiet")
    add_activity(busy.id, "1 hour")
    add_activity(busy.id, "5 minutes")
    add_activity(busy.id, "2 hours")
    last = {ws.pk: ws.last_activity for ws in Workspace.objects.with_last_activity()}
    (expected,) = run_sql("SELECT now() - interval '5 minutes'")[0]
    assert last == {busy.id: expected, quiet.id: None}


@pytest.mark.django_db
def test_activity_feed_filters_newest_first_and_after_a_cursor_oldest_first(register):
    ws = register("agent")
    other = register("other")
    ids = [
        activity_append(workspace_id=ws.id, activity_type=kind).id
        for kind in ["a2a_receive", "agent_log", "a2a_receive", "a2a_receive"]
    ]
    activity_append(workspace_id=other.id, activity_type="a2a_receive")

    assert feed_ids(ws.id) == ids[::-1]
    assert feed_ids(ws.id, activity_type="a2a_receive") == [ids[3], ids[2], ids[0]]
    assert feed_ids(ws.id, since_id=ids[1]) == [ids[2], ids[3]]
    assert feed_ids(ws.id, activity_type="a2a_receive", since_id=ids[0], limit=1) == [ids[2]]
    assert feed_ids(ws.id, activity_type="missing") == []


@pytest.mark.django_db
@pytest.mark.parametrize("since_id", [None, "cursor"])
def test_the_feed_reads_the_workspaces_credentials_in_the_same_statement(register, since_id):
    ws = register("agent")
    cursor = activity_append(workspace_id=ws.id, activity_type="agent_log").id
    since = None if since_id is None else cursor

    with CaptureQueriesContext(connection) as queries:
        page = feed(ws.id, since)

    # The binary cursor is psycopg's own: Django records none of its statements.
    assert len(queries) == 0
    assert page.workspace == ws.workspace
    assert page.workspace.token_hash == ws.workspace.token_hash
    assert page.cursor_found
    assert [row.id for row in page.rows] == ([] if since else [cursor])
    assert feed(uuid.uuid4(), since) == FeedPage(None, False, [])


@pytest.mark.django_db
def test_rows_of_one_transaction_page_by_id_and_none_is_skipped(register):
    # One transaction: every row has the same created_at; the id alone orders them.
    ws = register("agent")
    with transaction.atomic():
        ids = [activity_append(workspace_id=ws.id, activity_type="agent_log").id for _ in range(5)]
    assert len(set(ActivityLog.objects.filter(pk__in=ids).values_list("created_at"))) == 1

    seen, after = [], ids[0]
    while page := feed_ids(ws.id, since_id=after, limit=2):
        seen += page
        after = page[-1]

    assert seen == ids[1:]


@pytest.mark.django_db
def test_the_feed_follows_ids_not_creation_times(register):
    # A long transaction's row carries its transaction's early start time but commits, and so
    # takes its id, after a later short one: the feed puts it after, where a cursor finds it.
    ws = register("agent")
    short = activity_append(workspace_id=ws.id, activity_type="a2a_receive").id
    long = activity_append(workspace_id=ws.id, activity_type="a2a_receive").id
    ActivityLog.objects.filter(pk=long).update(created_at=timezone.now() - timedelta(seconds=2))

    assert feed_ids(ws.id, since_id=short) == [long]
    assert feed_ids(ws.id) == [long, short]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "since_id", ["foreign", "missing", "uuid", "negative", "huge", "text", "unicode-digit"]
)
def test_a_cursor_that_names_no_row_of_this_workspace_is_gone(register, since_id):
    ws = register("agent")
    other = register("other")
    foreign = activity_append(workspace_id=other.id, activity_type="agent_log").id
    activity_append(workspace_id=ws.id, activity_type="agent_log")
    values = {
        "foreign": str(foreign),
        "missing": str(foreign + 1000),
        "uuid": str(uuid.uuid4()),
        "negative": "-1",
        "huge": str(2**63),
        "text": "1; DROP TABLE activity_logs",
        "unicode-digit": "\u0661",
    }

    page = feed(ws.id, values[since_id])

    assert (page.workspace, page.cursor_found, page.rows) == (ws.workspace, False, [])


@pytest.mark.django_db
def test_feed_source_and_since_seconds_filters(register):
    ws = register("agent")
    canvas = activity_append(workspace_id=ws.id, activity_type="a2a_receive").id
    agent = activity_append(workspace_id=ws.id, activity_type="a2a_receive", source_id=ws.id).id
    old = activity_append(workspace_id=ws.id, activity_type="a2a_receive", source_id=ws.id).id
    ActivityLog.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(hours=2))

    assert feed_ids(ws.id, source="canvas") == [canvas]
    # Newest first by id, the feed's order: the backdated row was appended last.
    assert feed_ids(ws.id, source="agent") == [old, agent]
    assert feed_ids(ws.id, since_seconds=3600) == [agent, canvas]
    assert feed_ids(ws.id, source="agent", since_seconds=3600) == [agent]
    assert feed_ids(ws.id, since_id=canvas, since_seconds=3600) == [agent]


@pytest.mark.django_db
def test_inbox_ack_inserts_then_moves_forward_only(register):
    ws, other = register("agent"), register("other")

    marks = [InboxDeliveryState.objects.ack(ws.id, seq) for seq in (0, 5, 3, 5, 8)]

    assert marks == [0, 5, 5, 5, 8]
    assert InboxDeliveryState.objects.ack(other.id, 2) == 2
    assert dict(InboxDeliveryState.objects.values_list("workspace_id", "last_acked_seq")) == {
        ws.id: 8,
        other.id: 2,
    }
    assert str(InboxDeliveryState.objects.get(pk=ws.id)) == f"{ws.id} acked through 8"
