"""The rest of the runtime's feed contract: the ack, and the feed's upstream parameters."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.http import HttpResponse
from django.test import Client, override_settings

from molecule.models import ActivityLog, InboxDeliveryState, Workspace
from molecule.services.activity import activity_append
from molecule.services.activity_sweep import activity_sweep
from tests.helpers import RegisteredWorkspace, assert_json_error, run_sql

pytestmark = pytest.mark.django_db

REQUIRED = b'{"error":"acked_seq is required"}'
# Go's encoder (and so ours) escapes ">" inside strings.
NEGATIVE = b'{"error":"acked_seq must be \\u003e= 0"}'


def ack(api: Client, ws: RegisteredWorkspace, body: Any, **extra: Any) -> HttpResponse:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return api.post(
        ws.url("activity/ack"), data=data, content_type="application/json", **{**ws.auth, **extra}
    )


def stored(ws: RegisteredWorkspace) -> int | None:
    state = InboxDeliveryState.objects.filter(workspace_id=ws.id).first()
    return None if state is None else state.last_acked_seq


# --- POST /workspaces/<id>/activity/ack -------------------------------------------------------

# (case, body, status, exact answer)
ACK_CASES = [
    ("five", {"acked_seq": 5}, 200, b'{"last_acked_seq":5}'),
    ("zero", {"acked_seq": 0}, 200, b'{"last_acked_seq":0}'),
    ("largest bigint", {"acked_seq": 2**63 - 1}, 200, b'{"last_acked_seq":9223372036854775807}'),
    ("missing", {}, 400, REQUIRED),
    ("null", {"acked_seq": None}, 400, REQUIRED),
    ("string of digits", {"acked_seq": "5"}, 400, REQUIRED),
    ("word", {"acked_seq": "five"}, 400, REQUIRED),
    ("whole float", b'{"acked_seq": 5.0}', 400, REQUIRED),
    ("fraction", {"acked_seq": 1.5}, 400, REQUIRED),
    ("exponent", b'{"acked_seq": 1e3}', 400, REQUIRED),
    ("true", {"acked_seq": True}, 400, REQUIRED),
    ("false", {"acked_seq": False}, 400, REQUIRED),
    ("list", {"acked_seq": [5]}, 400, REQUIRED),
    ("past bigint", {"acked_seq": 2**63}, 400, REQUIRED),
    ("minus one", {"acked_seq": -1}, 400, NEGATIVE),
    ("smallest bigint", {"acked_seq": -(2**63)}, 400, NEGATIVE),
    ("below bigint", {"acked_seq": -(2**63) - 1}, 400, REQUIRED),
    ("not json", b"not json", 400, REQUIRED),
    ("array", b"[5]", 400, REQUIRED),
    ("empty body", b"", 400, REQUIRED),
]


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [case[1:] for case in ACK_CASES],
    ids=[case[0] for case in ACK_CASES],
)
def test_ack_answers_upstreams_statuses_and_bodies(api, poll_workspace, body, status, answer):
    response = ack(api, poll_workspace, body)

    assert (response.status_code, response.content) == (status, answer)
    assert response["Content-Type"] == "application/json"
    expected = json.loads(answer).get("last_acked_seq")
    assert stored(poll_workspace) == expected


def test_ack_keeps_this_apis_415_for_a_body_that_is_not_json(api, poll_workspace):
    response = api.post(
        poll_workspace.url("activity/ack"),
        data="acked_seq=5",
        content_type="application/x-www-form-urlencoded",
        **poll_workspace.auth,
    )

    assert_json_error(response, 415)
    assert stored(poll_workspace) is None


def test_ack_only_moves_forward_and_answers_the_stored_mark(api, poll_workspace):
    ws = poll_workspace
    answers = [ack(api, ws, {"acked_seq": seq}).json() for seq in (10, 4, 10, 12, 0)]

    assert [answer["last_acked_seq"] for answer in answers] == [10, 10, 10, 12, 12]
    assert stored(ws) == 12


def test_a_repeated_ack_still_stamps_updated_at(api, poll_workspace):
    ws = poll_workspace
    ack(api, ws, {"acked_seq": 3})
    run_sql("UPDATE inbox_delivery_state SET updated_at = now() - interval '1 day'")

    ack(api, ws, {"acked_seq": 3})

    assert run_sql("SELECT updated_at = now() FROM inbox_delivery_state") == [(True,)]


def test_the_workspace_is_the_one_in_the_path_never_the_body(api, poll_workspace, other_workspace):
    body = {"acked_seq": 7, "workspace_id": str(other_workspace.id)}

    assert ack(api, poll_workspace, body).status_code == 200

    assert (stored(poll_workspace), stored(other_workspace)) == (7, None)


@pytest.mark.parametrize("token", ["none", "other", "removed"])
def test_ack_needs_the_workspaces_own_token(api, poll_workspace, other_workspace, token):
    ws = poll_workspace
    headers = {
        "none": {"HTTP_AUTHORIZATION": ""},
        "other": other_workspace.auth,
        "removed": ws.auth,
    }[token]
    if token == "removed":
        Workspace.objects.filter(pk=ws.id).update(status="removed")

    assert_json_error(ack(api, ws, {"acked_seq": 1}, **headers), 401)
    assert stored(ws) is None


@override_settings(ADMIN_TOKEN="operator-token-of-at-least-some-length")
def test_the_admin_token_may_ack_for_any_workspace(api, poll_workspace):
    operator = {"HTTP_AUTHORIZATION": "Bearer operator-token-of-at-least-some-length"}

    response = ack(api, poll_workspace, {"acked_seq": 9}, **operator)

    assert response.content == b'{"last_acked_seq":9}'


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_ack_allows_only_post(api, poll_workspace, method):
    response = api.generic(method, poll_workspace.url("activity/ack"), **poll_workspace.auth)

    assert_json_error(response, 405)
    assert response["Allow"] == "POST"


def test_an_ack_for_a_workspace_deleted_after_it_authenticated_is_500(
    api, poll_workspace, monkeypatch
):
    # Check the foreign key at once, as the commit would outside the test's transaction.
    run_sql("SET CONSTRAINTS ALL IMMEDIATE")
    vanished = Workspace(id=uuid.uuid4(), name="gone")
    monkeypatch.setattr(Workspace.objects, "admit", lambda *args, **kwargs: vanished)

    response = ack(api, poll_workspace, {"acked_seq": 1})

    assert (response.status_code, response.content) == (500, b'{"error":"failed to record ack"}')


# --- acknowledged rows and retention -----------------------------------------------------------


def feed_page(api: Client, ws: RegisteredWorkspace, **query: Any) -> list[dict[str, Any]]:
    response = api.get(ws.url("activity"), query, **ws.auth)
    assert response.status_code == 200, response.content
    return response.json()


def written(ws: RegisteredWorkspace, count: int) -> list[int]:
    return [
        activity_append(workspace_id=ws.id, activity_type="a2a_receive", summary=f"m{n}").id
        for n in range(count)
    ]


def age_every_row(days: int) -> None:
    ActivityLog.objects.update(created_at=TransactionNow() - timedelta(days=days))


def test_a_poller_offline_past_the_soft_horizon_still_gets_every_row_it_had_not_drained(
    api, poll_workspace
):
    ws = poll_workspace
    seed, *rows = written(ws, 11)
    # The runtime polls a page, saves its cursor, and acks the page's last seq; then it stops.
    page = feed_page(api, ws, since_id=seed, limit=4)
    cursor = page[-1]["id"]
    assert ack(api, ws, {"acked_seq": page[-1]["seq"]}).json() == {"last_acked_seq": cursor}

    age_every_row(10)
    report = activity_sweep()

    # Everything acknowledged before the mark is gone; the mark (its cursor) and what it had
    # not received are kept until the hard horizon.
    assert report.deleted == 1 + 3
    resumed = feed_page(api, ws, since_id=cursor)
    assert [row["id"] for row in resumed] == rows[4:]


def test_a_poller_offline_past_the_hard_horizon_finds_its_cursor_gone(api, poll_workspace):
    ws = poll_workspace
    seed = written(ws, 3)[0]
    assert ack(api, ws, {"acked_seq": seed}).status_code == 200

    age_every_row(31)
    assert activity_sweep().deleted == 3

    assert_json_error(api.get(ws.url("activity"), {"since_id": seed}, **ws.auth), 410)


# --- include=peer_info, peer_id, before_ts ----------------------------------------------------

CARD_BASE = "https://platform.example/"


def report(ws: RegisteredWorkspace, **columns: Any) -> int:
    return activity_append(workspace_id=ws.id, activity_type="a2a_receive", **columns).id


@override_settings(EXTERNAL_PLATFORM_URL=CARD_BASE)
def test_peer_info_adds_the_peers_name_card_and_attachments_each_only_when_known(
    api, poll_workspace, register
):
    ws = poll_workspace
    peer = register("Peer Agent")
    nameless = register("")
    gone_id = uuid.uuid4()
    ids = {
        "peer": report(ws, source_id=peer.id, request_body={"file_id": "f", "name": "a.txt"}),
        "nameless": report(ws, source_id=nameless.id),
        "deleted peer": report(ws, source_id=gone_id),
        "canvas": report(ws, request_body={"uri": "u", "mimeType": "image/gif"}),
    }

    rows = {row["id"]: row for row in feed_page(api, ws, include="peer_info")}
    plain = feed_page(api, ws)

    extra = {
        name: {k: v for k, v in rows[i].items() if k not in plain[0]} for name, i in ids.items()
    }
    card = "https://platform.example/registry/discover/{}"
    assert extra == {
        "peer": {
            "peer_name": "Peer Agent",
            "agent_card_url": card.format(peer.id),
            "attachments": [{"kind": "file", "name": "a.txt"}],
        },
        "nameless": {"agent_card_url": card.format(nameless.id)},
        "deleted peer": {"agent_card_url": card.format(gone_id)},
        "canvas": {"attachments": [{"kind": "image", "uri": "u", "mime_type": "image/gif"}]},
    }
    # No workspace has a role here: peer_role is never sent.
    assert all("peer_role" not in row for row in rows.values())
    assert all("peer_name" not in row and "attachments" not in row for row in plain)


def test_without_an_external_platform_url_there_is_no_agent_card_url(api, poll_workspace, register):
    peer = register("peer")
    report(poll_workspace, source_id=peer.id)

    [row] = feed_page(api, poll_workspace, include="peer_info")

    assert row["peer_name"] == "peer"
    assert "agent_card_url" not in row


@pytest.mark.parametrize(
    ("include", "with_info"),
    [
        ("peer_info", True),
        (" peer_info ", True),
        ("tools, peer_info,other", True),
        ("", False),
        ("peer", False),
        ("PEER_INFO", False),
        ("peer_info_extra", False),
    ],
)
def test_include_is_a_trimmed_comma_separated_list_of_flags(
    api, poll_workspace, register, include, with_info
):
    report(poll_workspace, source_id=register("named").id)

    [row] = feed_page(api, poll_workspace, include=include)

    assert ("peer_name" in row) is with_info


def test_peer_id_selects_rows_the_peer_sent_or_received(api, poll_workspace, register):
    ws = poll_workspace
    peer, other = register("peer"), register("other")
    sent = report(ws, source_id=peer.id)
    received = report(ws, target_id=peer.id, source_id=other.id)
    report(ws, source_id=other.id, target_id=other.id)
    report(ws)

    rows = feed_page(api, ws, peer_id=str(peer.id))
    braced = feed_page(api, ws, peer_id="{" + str(peer.id).upper() + "}")
    after = feed_page(api, ws, peer_id=str(peer.id), since_id=sent)

    assert [row["id"] for row in rows] == [received, sent]
    assert braced == rows
    assert [row["id"] for row in after] == [received]


@pytest.mark.parametrize("peer_id", ["nope", "123", str(uuid.UUID(int=3))[:-1], "' OR 1=1"])
def test_a_peer_id_that_is_not_a_uuid_is_400(api, poll_workspace, peer_id):
    response = api.get(poll_workspace.url("activity"), {"peer_id": peer_id}, **poll_workspace.auth)

    assert (response.status_code, response.content) == (400, b'{"error":"peer_id must be a UUID"}')


def test_before_ts_selects_rows_strictly_older(api, poll_workspace):
    ws = poll_workspace
    old, edge, new = report(ws), report(ws), report(ws)
    for row_id, at in ((old, "2026-04-30T23:00:00Z"), (edge, "2026-05-01T00:00:00Z")):
        ActivityLog.objects.filter(pk=row_id).update(created_at=at)

    def ids(**query: Any) -> list[int]:
        return [row["id"] for row in feed_page(api, ws, **query)]

    assert ids(before_ts="2026-05-01T00:00:00Z") == [old]
    assert ids(before_ts="2026-05-01T02:00:00.000001+02:00") == [edge, old]
    assert ids(before_ts="2026-05-01T00:00:00.5Z", type="a2a_receive", since_id=old) == [edge]
    assert ids(before_ts="2999-01-01T00:00:00Z", since_secs=60) == [new]


BEFORE_TS_ERROR = b'{"error":"before_ts must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"}'


@pytest.mark.parametrize(
    "before_ts",
    [
        "2026-05-01",
        "2026-05-01T00:00:00",
        "2026-05-01 00:00:00Z",
        "2026-05-01t00:00:00z",
        "2026-05-01T00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-05-01T24:00:00Z",
        "2026-05-01T00:00:00.Z",
        "2026-05-01T00:00:00+0200",
        "1714521600",
        "yesterday",
    ],
)
def test_a_before_ts_that_is_not_rfc3339_is_400(api, poll_workspace, before_ts):
    response = api.get(
        poll_workspace.url("activity"), {"before_ts": before_ts}, **poll_workspace.auth
    )

    assert (response.status_code, response.content) == (400, BEFORE_TS_ERROR)
