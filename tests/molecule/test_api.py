"""Registry, heartbeat and activity endpoints through real routing and middleware."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.http import HttpResponse
from django.test import Client, override_settings

from molecule.models import ActivityLog, Workspace
from molecule.services.activity_sweep import activity_sweep
from tests.helpers import RegisteredWorkspace, assert_json_error, run_sql

# Shorter than the default, so the test says which horizon prunes the cursor.
ACTIVITY_RETENTION = timedelta(days=7)

pytestmark = pytest.mark.django_db

TEN_MB = 10 * 1024 * 1024
URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def post_json(api: Client, url: str, body: Any, **extra: Any) -> HttpResponse:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return api.post(url, data=data, content_type="application/json", **extra)


def register_body(workspace_id: uuid.UUID | str, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(workspace_id),
        "delivery_mode": "poll",
        "agent_card": {"name": "agent"},
        **fields,
    }


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def row_counts() -> tuple[int, int]:
    return run_sql(
        "SELECT (SELECT count(*) FROM workspaces), (SELECT count(*) FROM activity_logs)"
    )[0]


def heartbeat_body(ws: RegisteredWorkspace, **fields: Any) -> dict[str, Any]:
    return {"workspace_id": str(ws.id), "active_tasks": 1, "current_task": "task", **fields}


def append_activity(ws: RegisteredWorkspace, count: int, activity_type: str = "a2a_send") -> None:
    ActivityLog.objects.bulk_create(
        ActivityLog(workspace_id=ws.id, activity_type=activity_type, summary=f"row {i}")
        for i in range(count)
    )


# --- POST /registry/register ------------------------------------------------------------------


def test_first_registration_mints_a_token(api):
    workspace_id = uuid.uuid4()

    response = post_json(
        api,
        "/registry/register",
        register_body(workspace_id, url="https://agent.example/a2a", agent_card={"name": "Ann"}),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "registered"
    assert body["id"] == str(workspace_id)
    token = body["auth_token"]
    # 32 random bytes are 43 urlsafe characters: at least 256 bits.
    assert len(token) >= 43
    assert URLSAFE.fullmatch(token)
    workspace = Workspace.objects.get(pk=workspace_id)
    assert (workspace.name, workspace.delivery_mode, workspace.url) == (
        "Ann",
        "poll",
        "https://agent.example/a2a",
    )
    assert Workspace.objects.authenticate(workspace_id, token) == workspace


def test_tokens_are_stored_only_as_hashes(api):
    tokens = []
    for _ in range(5):
        body = post_json(api, "/registry/register", register_body(uuid.uuid4())).json()
        tokens.append(body["auth_token"])

    rows = [text for (text,) in run_sql("SELECT w::text FROM workspaces AS w")]

    assert len(rows) == 5
    assert len(set(tokens)) == 5
    for token in tokens:
        assert not any(token in row for row in rows)


def test_reregistering_without_a_token_is_401(api):
    workspace_id = uuid.uuid4()
    post_json(api, "/registry/register", register_body(workspace_id))

    response = post_json(
        api, "/registry/register", register_body(workspace_id, agent_card={"name": "thief"})
    )

    assert_json_error(response, 401)
    assert Workspace.objects.get(pk=workspace_id).name == "agent"


@pytest.mark.parametrize("header", ["Bearer not-the-token", "Token x", "Bearer"])
def test_reregistering_with_a_bad_header_is_401(api, header):
    workspace_id = uuid.uuid4()
    post_json(api, "/registry/register", register_body(workspace_id))

    response = post_json(
        api,
        "/registry/register",
        register_body(workspace_id, agent_card={"name": "thief"}),
        HTTP_AUTHORIZATION=header,
    )

    assert_json_error(response, 401)
    assert Workspace.objects.get(pk=workspace_id).name == "agent"


def test_reregistering_with_another_workspaces_token_is_401(api, poll_workspace, other_workspace):
    response = post_json(
        api,
        "/registry/register",
        register_body(poll_workspace.id, delivery_mode="push", agent_card={"name": "thief"}),
        **other_workspace.auth,
    )

    assert_json_error(response, 401)
    workspace = Workspace.objects.get(pk=poll_workspace.id)
    assert (workspace.name, workspace.delivery_mode) == ("poller", "poll")


def test_reregistering_with_its_own_token_updates_and_mints_nothing(api):
    workspace_id = uuid.uuid4()
    token = post_json(api, "/registry/register", register_body(workspace_id)).json()["auth_token"]
    Workspace.objects.filter(pk=workspace_id).update(status="offline")
    stored_hash = Workspace.objects.get(pk=workspace_id).token_hash

    response = post_json(
        api,
        "/registry/register",
        register_body(
            workspace_id,
            delivery_mode="push",
            # A literal address: registration checks it without a lookup or a connection.
            url="https://93.184.215.14/hook",
            agent_card={"name": "renamed"},
        ),
        **bearer(token),
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "registered"
    assert body["id"] == str(workspace_id)
    assert "auth_token" not in body
    workspace = Workspace.objects.get(pk=workspace_id)
    assert (workspace.name, workspace.delivery_mode, workspace.url, workspace.status) == (
        "renamed",
        "push",
        "https://93.184.215.14/hook",
        "online",
    )
    assert workspace.token_hash == stored_hash
    assert Workspace.objects.count() == 1
    # The original token keeps working.
    beat = {"workspace_id": str(workspace_id), "active_tasks": 1, "current_task": "t"}
    assert post_json(api, "/registry/heartbeat", beat, **bearer(token)).status_code == 200
    assert Workspace.objects.get(pk=workspace_id).active_tasks == 1


REGISTER_BAD = {
    "not-json": b"{",
    "text": b"not json at all",
    "invalid-utf8": b'{"id": "\xff\xfe"}',
    "array": b"[]",
    "string": b'"registered"',
    "number": b"42",
    "null": b"null",
    "missing-id": {"delivery_mode": "poll"},
    "id-int": {"id": 123},
    "id-null": {"id": None},
    "id-list": {"id": [str(uuid.uuid4())]},
    "id-not-uuid": {"id": "not-a-uuid"},
    "id-sql": {"id": "' OR 1=1 --"},
    "delivery-mode-unknown": {"id": str(uuid.uuid4()), "delivery_mode": "pull"},
    "delivery-mode-case": {"id": str(uuid.uuid4()), "delivery_mode": "POLL"},
    "delivery-mode-int": {"id": str(uuid.uuid4()), "delivery_mode": 1},
    "agent-card-string": {"id": str(uuid.uuid4()), "agent_card": "name"},
    "agent-card-list": {"id": str(uuid.uuid4()), "agent_card": ["name"]},
    "name-int": {"id": str(uuid.uuid4()), "agent_card": {"name": 5}},
    "name-nul": {"id": str(uuid.uuid4()), "agent_card": {"name": "a\x00b"}},
    "name-too-long": {"id": str(uuid.uuid4()), "agent_card": {"name": "n" * 5000}},
    "url-int": {"id": str(uuid.uuid4()), "url": 5},
    "url-scheme": {"id": str(uuid.uuid4()), "url": "javascript:alert(1)"},
    "url-too-long": {"id": str(uuid.uuid4()), "url": "https://x/" + "a" * 5000},
    # Hostile JSON that Python parses but PostgreSQL cannot store, or that Python cannot parse.
    "url-nul": {"id": str(uuid.uuid4()), "url": "https://x/\x00"},
    "name-lone-surrogate": b'{"id": "%s", "agent_card": {"name": "\\ud800"}}'
    % str(uuid.uuid4()).encode(),
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("case", list(REGISTER_BAD))
def test_register_rejects_bad_bodies_with_400(api, case):
    before = row_counts()

    response = post_json(api, "/registry/register", REGISTER_BAD[case])

    assert_json_error(response, 400)
    assert row_counts() == before


def test_register_rejects_a_non_json_content_type(api):
    response = api.post(
        "/registry/register",
        data=json.dumps(register_body(uuid.uuid4())),
        content_type="text/plain",
    )

    assert_json_error(response, (400, 415))
    assert row_counts() == (0, 0)


def test_register_refuses_a_10_mb_body(api):
    body = register_body(uuid.uuid4(), agent_card={"name": "n" * TEN_MB})

    response = post_json(api, "/registry/register", body)

    assert_json_error(response, (400, 413))
    assert row_counts() == (0, 0)


# --- POST /registry/heartbeat -----------------------------------------------------------------


def test_heartbeat_updates_the_workspace(api, poll_workspace):
    ws = poll_workspace
    Workspace.objects.filter(pk=ws.id).update(status="offline")

    response = post_json(
        api,
        "/registry/heartbeat",
        heartbeat_body(ws, active_tasks=3, current_task="summarising"),
        **ws.auth,
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "platform_inbound_secret": ws.inbound_secret}
    workspace = Workspace.objects.get(pk=ws.id)
    assert (workspace.active_tasks, workspace.current_task, workspace.status) == (
        3,
        "summarising",
        "online",
    )


def test_heartbeat_accepts_zero_active_tasks(api, poll_workspace):
    ws = poll_workspace
    Workspace.objects.filter(pk=ws.id).update(active_tasks=5, current_task="busy")

    response = post_json(
        api, "/registry/heartbeat", heartbeat_body(ws, active_tasks=0, current_task=""), **ws.auth
    )

    assert response.status_code == 200
    assert Workspace.objects.filter(pk=ws.id, active_tasks=0, current_task="").exists()


HEARTBEAT_BAD = {
    "negative": {"active_tasks": -1},
    "string": {"active_tasks": "3"},
    "float": {"active_tasks": 1.5},
    "integral-float": {"active_tasks": 2.0},
    "bool-true": {"active_tasks": True},
    "bool-false": {"active_tasks": False},
    "over-int32": {"active_tasks": 2**31},
    "huge": {"active_tasks": 10**30},
    "current-task-int": {"current_task": 7},
    "current-task-nul": {"current_task": "a\x00b"},
    "current-task-too-long": {"current_task": "t" * 20_000},
    "workspace-id-not-uuid": {"workspace_id": "not-a-uuid"},
    "workspace-id-int": {"workspace_id": 1},
}


@pytest.mark.parametrize("case", list(HEARTBEAT_BAD))
def test_heartbeat_rejects_bad_fields_with_400(api, poll_workspace, case):
    ws = poll_workspace
    Workspace.objects.filter(pk=ws.id).update(active_tasks=2, current_task="before")

    response = post_json(
        api, "/registry/heartbeat", heartbeat_body(ws, **HEARTBEAT_BAD[case]), **ws.auth
    )

    assert_json_error(response, 400)
    workspace = Workspace.objects.get(pk=ws.id)
    assert (workspace.active_tasks, workspace.current_task) == (2, "before")


@pytest.mark.parametrize("active_tasks", ["absent", None], ids=["absent", "null"])
def test_heartbeat_without_active_tasks_means_0_and_unknown_fields_are_ignored(
    api, poll_workspace, active_tasks
):
    ws = poll_workspace
    Workspace.objects.filter(pk=ws.id).update(active_tasks=2)
    # The shape upstream's runtime sends: is_busy and uptime_seconds are not ours.
    body = heartbeat_body(ws, is_busy=True, uptime_seconds=12.5, error_rate=0)
    if active_tasks == "absent":
        del body["active_tasks"]
    else:
        body["active_tasks"] = active_tasks

    response = post_json(api, "/registry/heartbeat", body, **ws.auth)

    assert response.status_code == 200, response.content
    assert response.content == b'{"status":"ok","platform_inbound_secret":"%s"}' % (
        ws.inbound_secret.encode()
    )
    assert Workspace.objects.get(pk=ws.id).active_tasks == 0


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b"null",
        b'{"workspace_id": "%s", "active_tasks": 1, "current_task": "\\ud800"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["not-json", "array", "null", "lone-surrogate", "deep-nesting"],
)
def test_heartbeat_rejects_bad_json_with_400(api, poll_workspace, body):
    ws = poll_workspace
    if b"%s" in body:
        body = body % str(ws.id).encode()

    response = post_json(api, "/registry/heartbeat", body, **ws.auth)

    assert_json_error(response, 400)
    assert Workspace.objects.get(pk=ws.id).active_tasks == 0


def test_heartbeat_refuses_a_10_mb_body(api, poll_workspace):
    ws = poll_workspace
    body = heartbeat_body(ws, current_task="t" * TEN_MB)

    response = post_json(api, "/registry/heartbeat", body, **ws.auth)

    assert_json_error(response, (400, 413))
    assert Workspace.objects.get(pk=ws.id).current_task == ""


@pytest.mark.parametrize(
    "credentials", ["none", "wrong-token", "other-workspace", "Token scheme", "Bearer alone"]
)
def test_heartbeat_without_the_workspaces_token_is_401(
    api, poll_workspace, other_workspace, credentials
):
    ws = poll_workspace
    headers = {
        "none": {},
        "wrong-token": bearer("x" * 43),
        "other-workspace": other_workspace.auth,
        "Token scheme": {"HTTP_AUTHORIZATION": f"Token {ws.token}"},
        "Bearer alone": {"HTTP_AUTHORIZATION": "Bearer"},
    }[credentials]

    response = post_json(api, "/registry/heartbeat", heartbeat_body(ws, active_tasks=9), **headers)

    assert_json_error(response, 401)
    assert Workspace.objects.get(pk=ws.id).active_tasks == 0


def test_heartbeat_for_an_unknown_workspace_is_401_and_changes_nothing(api, poll_workspace):
    unknown = uuid.uuid4()
    body = {"workspace_id": str(unknown), "active_tasks": 7, "current_task": "ghost"}
    owner_before = Workspace.objects.filter(pk=poll_workspace.id).values().get()

    response = post_json(api, "/registry/heartbeat", body, **poll_workspace.auth)

    assert_json_error(response, 401)
    # Not created by its heartbeat, and the token's own workspace is not the one updated.
    assert not Workspace.objects.filter(pk=unknown).exists()
    assert Workspace.objects.filter(pk=poll_workspace.id).values().get() == owner_before
    assert not ActivityLog.objects.exists()


# --- /workspaces/<id>/activity ----------------------------------------------------------------


def test_posting_activity_appends_a_row(api, poll_workspace):
    ws = poll_workspace
    target = uuid.uuid4()
    body = {
        "activity_type": "a2a_send",
        "method": "message/send",
        "summary": "said hello",
        "target_id": str(target),
        "source_id": str(ws.id),
        "status": "error",
        "error_detail": "peer timed out",
        "duration_ms": 1234,
        "request_body": {"text": "hello", "n": [1, 2, {"deep": None}]},
        "response_body": {"ok": False},
    }

    response = post_json(api, ws.url("activity"), body, **ws.auth)

    assert response.status_code == 200, response.content
    assert response.content == b'{"status":"logged"}'
    row = ActivityLog.objects.get()
    listed = api.get(ws.url("activity"), **ws.auth).json()
    assert listed == [
        {
            **body,
            "id": row.id,
            "seq": row.id,
            "workspace_id": str(ws.id),
            "created_at": row.created_at.isoformat(),
        }
    ]


def test_posting_activity_defaults_optional_fields(api, poll_workspace):
    ws = poll_workspace

    response = post_json(api, ws.url("activity"), {"activity_type": "agent_log"}, **ws.auth)

    assert response.status_code == 200
    [answer] = api.get(ws.url("activity"), **ws.auth).json()
    # source_id defaults to the reporting workspace, as upstream's does.
    assert {key: answer[key] for key in answer if key not in ("id", "seq", "created_at")} == {
        "workspace_id": str(ws.id),
        "activity_type": "agent_log",
        "source_id": str(ws.id),
        "target_id": None,
        "method": "",
        "summary": "",
        "request_body": None,
        "response_body": None,
        "duration_ms": None,
        "status": "ok",
        "error_detail": None,
    }


@pytest.mark.parametrize(
    "activity_type",
    [
        "a2a_send",
        "a2a_receive",
        "task_update",
        "agent_log",
        "skill_promotion",
        "memory_write",
        "error",
    ],
)
def test_every_upstream_activity_type_is_accepted(api, poll_workspace, activity_type):
    ws = poll_workspace

    response = post_json(api, ws.url("activity"), {"activity_type": activity_type}, **ws.auth)

    assert response.status_code == 200
    assert ActivityLog.objects.get().activity_type == activity_type


def test_another_workspaces_source_id_is_403(api, poll_workspace, other_workspace):
    ws = poll_workspace
    body = {"activity_type": "agent_log", "source_id": str(other_workspace.id)}

    assert_json_error(post_json(api, ws.url("activity"), body, **ws.auth), 403)
    assert ActivityLog.objects.count() == 0


ACTIVITY_BAD = {
    "not-json": b"{",
    "array": b"[]",
    "missing-type": {"summary": "x"},
    "empty-type": {"activity_type": ""},
    "unknown-type": {"activity_type": "ping"},
    "type-case": {"activity_type": "A2A_SEND"},
    "type-int": {"activity_type": 1},
    "target-not-uuid": {"activity_type": "agent_log", "target_id": "ws-1"},
    "source-int": {"activity_type": "agent_log", "source_id": 5},
    "duration-string": {"activity_type": "agent_log", "duration_ms": "5"},
    "duration-negative": {"activity_type": "agent_log", "duration_ms": -1},
    "error-detail-int": {"activity_type": "agent_log", "error_detail": 1},
    "method-list": {"activity_type": "agent_log", "method": ["a"]},
    "summary-nul": {"activity_type": "agent_log", "summary": "a\x00b"},
    "summary-too-long": {"activity_type": "agent_log", "summary": "s" * 20_000},
    "status-int": {"activity_type": "agent_log", "status": 5},
    # Hostile JSON that Python accepts but jsonb or UTF-8 cannot hold, or Python cannot parse.
    "request-body-nul": {"activity_type": "agent_log", "request_body": "a\x00b"},
    "request-body-nul-key": {"activity_type": "agent_log", "request_body": {"a\x00": 1}},
    "request-body-nan": b'{"activity_type": "agent_log", "request_body": NaN}',
    "request-body-infinity": b'{"activity_type": "agent_log", "request_body": 1e999}',
    "request-body-lone-surrogate": b'{"activity_type": "agent_log", "request_body": "\\ud800"}',
    "summary-lone-surrogate": b'{"activity_type": "agent_log", "summary": "\\udfff"}',
    "deep-nesting": b'{"activity_type": "agent_log", "request_body": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
}


@pytest.mark.parametrize("case", list(ACTIVITY_BAD))
def test_posting_bad_activity_is_400(api, poll_workspace, case):
    ws = poll_workspace

    response = post_json(api, ws.url("activity"), ACTIVITY_BAD[case], **ws.auth)

    assert_json_error(response, 400)
    assert ActivityLog.objects.count() == 0


def test_posting_a_10_mb_activity_is_refused(api, poll_workspace):
    ws = poll_workspace
    body = {"activity_type": "agent_log", "request_body": "r" * TEN_MB}

    assert_json_error(post_json(api, ws.url("activity"), body, **ws.auth), (400, 413))
    assert ActivityLog.objects.count() == 0


def test_sql_looking_activity_is_stored_verbatim(api, poll_workspace):
    ws = poll_workspace
    body = {
        "activity_type": "agent_log",
        "method": "' OR '1'='1",
        "summary": "Robert'); DELETE FROM workspaces WHERE ('1'='1",
        "request_body": {"q": "1; TRUNCATE pending_uploads", "'": '"'},
        "status": "ok\\'--",
    }

    response = post_json(api, ws.url("activity"), body, **ws.auth)
    listed = api.get(ws.url("activity"), {"type": body["activity_type"]}, **ws.auth)
    no_match = api.get(ws.url("activity"), {"type": "' OR 1=1 --"}, **ws.auth)

    assert response.status_code == 200
    assert len(listed.json()) == 1
    assert {key: listed.json()[0][key] for key in body} == body
    assert no_match.status_code == 200
    assert no_match.json() == []
    assert run_sql(
        "SELECT to_regclass('activity_logs') IS NOT NULL, to_regclass('workspaces') IS NOT NULL,"
        " to_regclass('pending_uploads') IS NOT NULL"
    ) == [(True, True, True)]
    assert row_counts() == (1, 1)


def test_activity_lists_newest_first(api, poll_workspace, other_workspace):
    ws = poll_workspace
    for i in range(3):
        post_json(
            api, ws.url("activity"), {"activity_type": "agent_log", "summary": f"s{i}"}, **ws.auth
        )
    append_activity(other_workspace, 2)

    rows = api.get(ws.url("activity"), **ws.auth).json()

    assert [row["summary"] for row in rows] == ["s2", "s1", "s0"]
    assert [row["id"] for row in rows] == sorted((row["id"] for row in rows), reverse=True)
    assert set(rows[0]) == {
        "id",
        "workspace_id",
        "activity_type",
        "source_id",
        "target_id",
        "method",
        "summary",
        "request_body",
        "response_body",
        "duration_ms",
        "status",
        "error_detail",
        "created_at",
        "seq",
    }


def test_activity_type_filter(api, poll_workspace):
    ws = poll_workspace
    append_activity(ws, 2, "a2a_send")
    append_activity(ws, 3, "a2a_receive")

    rows = api.get(ws.url("activity"), {"type": "a2a_receive"}, **ws.auth).json()

    assert [row["activity_type"] for row in rows] == ["a2a_receive"] * 3


def test_activity_since_id_returns_later_rows_oldest_first(api, poll_workspace):
    ws = poll_workspace
    append_activity(ws, 5)
    ids = sorted(ActivityLog.objects.values_list("id", flat=True))

    rows = api.get(ws.url("activity"), {"since_id": ids[2]}, **ws.auth).json()
    head = api.get(ws.url("activity"), {"since_id": ids[4]}, **ws.auth)

    assert [row["id"] for row in rows] == [ids[3], ids[4]]
    assert (head.status_code, head.content) == (200, b"[]")


def test_activity_limit_defaults_to_100_and_clamps_to_500(api, poll_workspace):
    ws = poll_workspace
    append_activity(ws, 501)
    newest = max(ActivityLog.objects.values_list("id", flat=True))

    default = api.get(ws.url("activity"), **ws.auth).json()
    one = api.get(ws.url("activity"), {"limit": 1}, **ws.auth).json()
    most = api.get(ws.url("activity"), {"limit": 500}, **ws.auth).json()
    over = api.get(ws.url("activity"), {"limit": 501}, **ws.auth).json()
    huge = api.get(ws.url("activity"), {"limit": str(10**30)}, **ws.auth).json()

    assert len(default) == 100
    assert [row["id"] for row in one] == [newest]
    assert len(most) == len(over) == len(huge) == 500


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"limit": "1e2"},
        {"limit": " 5"},
        {"limit": "\u0665"},
        {"since_secs": "0"},
        {"since_secs": "-5"},
        {"since_secs": "1.5"},
        {"since_secs": "abc"},
        {"source": "user"},
        {"type": "a\x00b"},
    ],
    ids=lambda query: next(iter(query.items()))[0] + "=" + next(iter(query.values()))[:20],
)
def test_activity_rejects_bad_query_parameters(api, poll_workspace, query):
    ws = poll_workspace
    append_activity(ws, 1)

    response = api.get(ws.url("activity"), query, **ws.auth)

    assert_json_error(response, 400)
    assert row_counts() == (1, 1)


# --- Methods and unknown URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "methods"),
    [
        ("/registry/register", ["GET", "PUT", "PATCH", "DELETE"]),
        ("/registry/heartbeat", ["GET", "PUT", "PATCH", "DELETE"]),
        ("activity", ["PUT", "PATCH", "DELETE"]),
    ],
)
def test_wrong_methods_are_405_json(api, poll_workspace, url, methods):
    full = poll_workspace.url(url) if not url.startswith("/") else url
    for method in methods:
        response = api.generic(method, full, **poll_workspace.auth)
        assert_json_error(response, 405)
        assert response["Allow"]
    assert row_counts() == (1, 0)


@pytest.mark.parametrize(
    "url",
    [
        # "/" is the HTML signpost page (tests/molecule/test_pages.py).
        "/nope",
        "/registry",
        "/registry/register/",
        "/registry/unknown",
        "/workspaces/",
        "/workspaces/{id}/nope",
        "/workspaces/{id}/pending-uploads/{id}",
        "/static/../../etc/passwd",
    ],
)
def test_unknown_urls_are_404_json(api, poll_workspace, url):
    response = api.get(url.format(id=poll_workspace.id), **poll_workspace.auth)

    assert_json_error(response, 404)


# --- The activity feed as upstream's runtime polls it -----------------------------------------


def a2a_message(api: Client, ws: RegisteredWorkspace, text: str) -> None:
    body = {"activity_type": "a2a_receive", "method": "message/send", "summary": text}
    response = post_json(api, ws.url("activity"), body, **ws.auth)
    assert (response.status_code, response.content) == (200, b'{"status":"logged"}')


def test_the_runtime_poll_loop_gets_every_row_once_in_order(api):
    # The runtime's inbox loop (workspace/inbox.py): register, then GET ?type=a2a_receive with
    # since_id = the last id it saw, default limit, until a poll answers [].
    workspace_id = uuid.uuid4()
    registered = post_json(api, "/registry/register", register_body(workspace_id))
    ws = RegisteredWorkspace(
        Workspace.objects.get(pk=workspace_id), registered.json()["auth_token"]
    )
    a2a_message(api, ws, "first")
    # Noise the type filter must drop.
    post_json(api, ws.url("activity"), {"activity_type": "agent_log"}, **ws.auth)
    [first] = api.get(ws.url("activity"), {"type": "a2a_receive"}, **ws.auth).json()
    cursor = first["id"]
    for i in range(150):
        a2a_message(api, ws, f"burst {i}")

    delivered, polls = [], 0
    while True:
        polls += 1
        response = api.get(
            ws.url("activity"), {"type": "a2a_receive", "since_id": str(cursor)}, **ws.auth
        )
        assert response.status_code == 200
        rows = response.json()
        if not rows:
            assert response.content == b"[]"
            break
        delivered += [row["summary"] for row in rows]
        cursor = rows[-1]["id"]

    assert first["summary"] == "first"
    assert delivered == [f"burst {i}" for i in range(150)]
    assert polls == 3  # 100, 50, then the head answers []


@pytest.mark.parametrize("since_id", ["foreign", "missing", "uuid", "text", "negative"])
def test_a_cursor_that_is_not_a_row_of_this_workspace_is_410(
    api, poll_workspace, other_workspace, since_id
):
    ws = poll_workspace
    append_activity(ws, 1)
    append_activity(other_workspace, 1)
    foreign = ActivityLog.objects.get(workspace_id=other_workspace.id).id
    values = {
        "foreign": str(foreign),
        "missing": str(foreign + 10_000),
        "uuid": str(uuid.uuid4()),
        "text": "1; DROP TABLE activity_logs",
        "negative": "-1",
    }

    response = api.get(ws.url("activity"), {"since_id": values[since_id]}, **ws.auth)

    body = assert_json_error(response, 410)
    assert "omit since_id" in body["error"]
    assert response.content.startswith(b'{"error":"')


def test_a_cursor_the_retention_sweep_pruned_is_410_and_the_poller_resets(api, poll_workspace):
    ws = poll_workspace
    append_activity(ws, 3)
    cursor, *kept = sorted(ActivityLog.objects.values_list("id", flat=True))
    ActivityLog.objects.filter(pk=cursor).update(
        created_at=TransactionNow() - ACTIVITY_RETENTION - timedelta(minutes=1)
    )

    with override_settings(ACTIVITY_RETENTION=ACTIVITY_RETENTION):
        assert activity_sweep().deleted == 1

    gone = api.get(ws.url("activity"), {"since_id": cursor}, **ws.auth)
    assert "omit since_id" in assert_json_error(gone, 410)["error"]
    # The poller drops its cursor and polls again: the newest rows, the pruned one not among them.
    reset = api.get(ws.url("activity"), **ws.auth)
    assert reset.status_code == 200
    assert [row["id"] for row in reset.json()] == sorted(kept, reverse=True)
    resumed = api.get(ws.url("activity"), {"since_id": kept[0]}, **ws.auth)
    assert [row["id"] for row in resumed.json()] == kept[1:]


def test_since_secs_is_capped_at_30_days_and_ands_with_the_other_filters(api, poll_workspace):
    ws = poll_workspace
    append_activity(ws, 4, "a2a_receive")
    ids = sorted(ActivityLog.objects.values_list("id", flat=True))
    run_sql(
        "UPDATE activity_logs SET created_at = now() - make_interval(days => %s) WHERE id = %s",
        [31, ids[0]],
    )
    run_sql(
        "UPDATE activity_logs SET created_at = now() - make_interval(days => %s) WHERE id = %s",
        [29, ids[1]],
    )
    ActivityLog.objects.filter(pk=ids[3]).update(activity_type="agent_log")

    def listed(**query: Any) -> list[int]:
        response = api.get(ws.url("activity"), query, **ws.auth)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()]

    assert listed(since_secs=str(10**30)) == [ids[3], ids[2], ids[1]]
    assert listed(since_secs=60) == [ids[3], ids[2]]
    assert listed(since_secs=60, type="a2a_receive") == [ids[2]]
    assert listed(since_secs=str(40 * 86400), since_id=ids[1]) == [ids[2], ids[3]]


def test_a_backlog_poll_without_a_limit_gets_the_whole_window_up_to_the_cap(api, poll_workspace):
    # The runtime's first poll (no cursor yet): since_secs=600 and no limit. 150 messages sent
    # before it started all come back, newest first, where the default page would hold 100.
    ws = poll_workspace
    append_activity(ws, 150, "a2a_receive")
    newest_first = sorted(ActivityLog.objects.values_list("id", flat=True), reverse=True)

    def listed(**query: Any) -> list[int]:
        response = api.get(ws.url("activity"), query, **ws.auth)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()]

    assert listed(type="a2a_receive", include="peer_info", since_secs=600) == newest_first
    # An explicit limit is kept, and so is the default page everywhere else.
    assert listed(since_secs=600, limit=20) == newest_first[:20]
    assert listed() == newest_first[:100]
    # A cursor poll pages as before.
    assert listed(since_secs=600, since_id=newest_first[-1]) == sorted(newest_first)[1:101]


def test_source_canvas_and_agent(api, poll_workspace):
    ws = poll_workspace
    post_json(api, ws.url("activity"), {"activity_type": "agent_log"}, **ws.auth)
    ActivityLog.objects.create(workspace_id=ws.id, activity_type="a2a_receive")

    canvas = api.get(ws.url("activity"), {"source": "canvas"}, **ws.auth).json()
    agent = api.get(ws.url("activity"), {"source": "agent"}, **ws.auth).json()

    assert [(row["activity_type"], row["source_id"]) for row in canvas] == [("a2a_receive", None)]
    assert [(row["activity_type"], row["source_id"]) for row in agent] == [
        ("agent_log", str(ws.id))
    ]


# --- Registry details of the wire contract ----------------------------------------------------


def test_register_answers_compactly_with_delivery_mode_and_no_store(api):
    workspace_id = uuid.uuid4()

    first = post_json(api, "/registry/register", register_body(workspace_id))
    token = first.json()["auth_token"]
    again = post_json(api, "/registry/register", register_body(workspace_id), **bearer(token))

    secret = first.json()["platform_inbound_secret"]
    assert first.content == (
        b'{"status":"registered","id":"%s","delivery_mode":"poll","auth_token":"%s",'
        b'"platform_inbound_secret":"%s"}'
        % (str(workspace_id).encode(), token.encode(), secret.encode())
    )
    assert again.content == (
        b'{"status":"registered","id":"%s","delivery_mode":"poll","platform_inbound_secret":"%s"}'
        % (str(workspace_id).encode(), secret.encode())
    )
    assert first["Cache-Control"] == again["Cache-Control"] == "no-store"


def test_a_removed_workspace_stays_removed(api):
    workspace_id = uuid.uuid4()
    token = post_json(api, "/registry/register", register_body(workspace_id)).json()["auth_token"]
    Workspace.objects.filter(pk=workspace_id).update(status=Workspace.Status.REMOVED)
    body = {"workspace_id": str(workspace_id), "active_tasks": 1}

    late_register = post_json(
        api, "/registry/register", register_body(workspace_id), **bearer(token)
    )
    late_heartbeat = post_json(api, "/registry/heartbeat", body, **bearer(token))
    bare_register = post_json(api, "/registry/register", register_body(workspace_id))

    assert "removed" in late_register.json()["error"]
    for response in (late_register, late_heartbeat, bare_register):
        assert_json_error(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
    workspace = Workspace.objects.get(pk=workspace_id)
    assert (workspace.status, workspace.active_tasks) == ("removed", 0)


@override_settings(ADMIN_TOKEN="operator-token-for-the-canvas")
def test_activity_posted_with_the_admin_token_is_the_canvas_unless_it_names_a_source(
    api, poll_workspace, other_workspace
):
    ws = poll_workspace
    admin = bearer("operator-token-for-the-canvas")
    post_json(api, ws.url("activity"), {"activity_type": "a2a_receive"}, **admin)
    body = {"activity_type": "a2a_receive", "source_id": str(other_workspace.id)}
    post_json(api, ws.url("activity"), body, **admin)

    rows = api.get(ws.url("activity"), **admin).json()

    assert [row["source_id"] for row in rows] == [str(other_workspace.id), None]
