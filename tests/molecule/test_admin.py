"""Workspaces and activity-log admin: busy state, last activity, phantom reset, read-only log."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from molecule.admin_utils import MAX_INDENT, compact_time, json_pretty
from molecule.models import ActivityLog, InboxDeliveryState, Workspace
from molecule.services.activity import activity_append
from tests.helpers import RegisteredWorkspace, assert_metric_delta, metrics_saved, run_sql

pytestmark = pytest.mark.django_db

WORKSPACES = reverse("admin:molecule_workspace_changelist")
RESET = reverse("admin:molecule_workspace_reset_phantom_busy")
ACTIVITY = reverse("admin:molecule_activitylog_changelist")

Register = Callable[..., RegisteredWorkspace]


def row_cells(html: str, marker: str) -> dict[str, str]:
    """The text of every field-* cell in the one list row that contains ``marker``."""
    (tr,) = [tr for tr in re.findall(r"<tr>.*?</tr>", html, re.S) if marker in tr]
    cells = re.findall(r'<t[dh] class="field-([a-z_]+)[^"]*">(.*?)</t[dh]>', tr, re.S)
    return {name: re.sub(r"<[^>]+>", "", text).strip() for name, text in cells}


def add_activity(workspace: Workspace, at: datetime) -> ActivityLog:
    row = activity_append(workspace_id=workspace.id, activity_type="heartbeat", summary="tick")
    ActivityLog.objects.filter(pk=row.pk).update(created_at=at)
    return row


RESETS = "molecule_phantom_busy_resets_total"


# --- Workspaces list ------------------------------------------------------------------------


def test_workspace_list_shows_busy_state_and_last_activity(
    admin_client: Client, register: Register
) -> None:
    busy = register(
        "builder", "poll", status="offline", active_tasks=3, current_task="summarise inbox"
    ).workspace
    # The newest of several rows is the one shown, whatever order they were written in.
    add_activity(busy, datetime(2024, 3, 5, 14, 7, tzinfo=UTC))
    add_activity(busy, datetime(2024, 1, 2, 9, 0, tzinfo=UTC))
    idle = register("idler", "push").workspace

    html = admin_client.get(WORKSPACES).content.decode()

    for column in ("status", "delivery_mode", "active_tasks", "current_task", "last_activity"):
        assert f"column-{column}" in html, column
    cells = row_cells(html, str(busy.id))
    assert cells["name"] == "builder"
    assert cells["status"] == "Offline"
    assert cells["delivery_mode"] == "Poll"
    assert cells["active_tasks"] == "3"
    assert cells["current_task"] == "summarise inbox"
    # TIME_ZONE is UTC and the admin renders DATETIME_FORMAT "N j, Y, P".
    assert cells["last_activity"] == "March 5, 2024, 2:07 p.m."
    idle_cells = row_cells(html, str(idle.id))
    assert idle_cells["active_tasks"] == "0"
    assert idle_cells["last_activity"] == "-"


@pytest.mark.parametrize(
    ("direction", "expected"), [("", ["older", "newer"]), ("-", ["newer", "older"])]
)
def test_workspace_list_sorts_by_last_activity(
    admin_client: Client, register: Register, direction: str, expected: list[str]
) -> None:
    older, newer = register("older").workspace, register("newer").workspace
    # Names sort the other way round from activity, so the default ordering cannot pass.
    add_activity(older, datetime(2024, 1, 1, tzinfo=UTC))
    add_activity(newer, datetime(2024, 6, 1, tzinfo=UTC))
    # The changelist's own column list: it may start with the action checkbox.
    column = admin_client.get(WORKSPACES).context["cl"].list_display.index("last_activity")
    response = admin_client.get(WORKSPACES, {"o": f"{direction}{column}"})
    assert [workspace.name for workspace in response.context["cl"].result_list] == expected


def test_workspace_list_and_page_show_the_last_acked_seq(
    admin_client: Client, register: Register
) -> None:
    acking, silent = register("acking").workspace, register("silent").workspace
    InboxDeliveryState.objects.ack(acking.id, 4242)

    html = admin_client.get(WORKSPACES).content.decode()
    page = admin_client.get(reverse("admin:molecule_workspace_change", args=[acking.id]))

    assert "column-last_acked_seq" in html
    assert row_cells(html, str(acking.id))["last_acked_seq"] == "4242"
    assert row_cells(html, str(silent.id))["last_acked_seq"] == "0"
    assert re.search(r"field-last_acked_seq.*?4242", page.content.decode(), re.S)


def test_workspace_list_costs_the_same_queries_for_2_or_20_workspaces(
    admin_client: Client, register: Register
) -> None:
    def list_queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(WORKSPACES).status_code == 200
        return [query["sql"] for query in captured.captured_queries]

    for n in range(2):
        InboxDeliveryState.objects.ack(register(f"few-{n}").id, n)
    few = list_queries()
    for n in range(18):
        InboxDeliveryState.objects.ack(register(f"many-{n}").id, n)
    many = list_queries()

    assert len(many) == len(few)
    [listing] = [sql for sql in many if sql.startswith('SELECT "workspaces"."id"')]
    assert 'LEFT OUTER JOIN "inbox_delivery_state"' in listing


def test_token_hash_and_inbound_secret_never_appear(
    admin_client: Client, register: Register
) -> None:
    registered = register("secretive", "push")
    workspace = registered.workspace
    assert len(workspace.token_hash) == 64
    assert workspace.platform_inbound_secret_sealed
    for url in (
        WORKSPACES,
        reverse("admin:molecule_workspace_change", args=[workspace.id]),
    ):
        html = admin_client.get(url).content.decode()
        for hidden in (
            workspace.token_hash,
            "token_hash",
            registered.inbound_secret,
            workspace.platform_inbound_secret_sealed,
            "inbound_secret",
        ):
            assert hidden not in html


def test_workspaces_cannot_be_added_in_the_admin(admin_client: Client) -> None:
    add = reverse("admin:molecule_workspace_add")
    form = {"status": "online", "name": "made-by-hand", "delivery_mode": "poll"}

    response = admin_client.post(add, form)

    # Nothing is created: workspaces register themselves and get their token from the API.
    assert response.status_code == 403
    assert not Workspace.objects.exists()
    assert add not in admin_client.get(WORKSPACES).content.decode()


# --- Reset phantom-busy now -------------------------------------------------------------------


def test_reset_button_is_on_the_list(admin_client: Client) -> None:
    html = admin_client.get(WORKSPACES).content.decode()
    assert re.search(rf'<form method="post" action="{re.escape(RESET)}"', html)
    assert "Reset phantom-busy now" in html


def test_reset_phantom_busy_now(admin_client: Client, register: Register) -> None:
    phantom = register("phantom", active_tasks=2, current_task="stuck forever").workspace
    add_activity(phantom, timezone.now() - timedelta(hours=1))
    active = register("active", active_tasks=1, current_task="working").workspace
    add_activity(active, timezone.now())
    before = metrics_saved()

    response = admin_client.post(RESET, follow=True)

    assert response.redirect_chain == [(WORKSPACES, 302)]
    assert [str(m) for m in response.context["messages"]] == ["Reset 1 phantom-busy workspace."]
    phantom.refresh_from_db()
    active.refresh_from_db()
    assert (phantom.active_tasks, phantom.current_task) == (0, "")
    assert (active.active_tasks, active.current_task) == (1, "working")
    assert_metric_delta(before, 1, RESETS)


def test_reset_phantom_busy_with_nothing_to_reset(admin_client: Client, register: Register) -> None:
    register("idle")
    before = metrics_saved()
    response = admin_client.post(RESET, follow=True)
    assert [str(m) for m in response.context["messages"]] == ["Reset 0 phantom-busy workspaces."]
    assert_metric_delta(before, 0, RESETS)


def test_reset_phantom_busy_refuses_get(admin_client: Client, register: Register) -> None:
    phantom = register("phantom", active_tasks=2).workspace
    assert admin_client.get(RESET).status_code == 405
    phantom.refresh_from_db()
    assert phantom.active_tasks == 2


def test_reset_phantom_busy_refused_without_change_permission(
    django_user_model, register: Register
) -> None:
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user(
        "viewer", password="viewer-pw-123", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_workspace"))
    client = Client()
    client.force_login(viewer)
    phantom = register("phantom", active_tasks=2).workspace

    response = client.post(RESET, follow=True)

    assert [str(m) for m in response.context["messages"]] == ["You may not change workspaces."]
    phantom.refresh_from_db()
    assert phantom.active_tasks == 2


def test_reset_phantom_busy_refused_to_anonymous(register: Register) -> None:
    phantom = register("phantom", active_tasks=2).workspace
    response = Client().post(RESET)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    phantom.refresh_from_db()
    assert phantom.active_tasks == 2


# --- Activity logs ----------------------------------------------------------------------------


@pytest.fixture
def activity(register: Register) -> ActivityLog:
    workspace = register("logger").workspace
    return activity_append(workspace_id=workspace.id, activity_type="a2a_receive", summary="hi")


def test_activity_log_list_is_shown(admin_client: Client, activity: ActivityLog) -> None:
    response = admin_client.get(ACTIVITY)
    assert response.status_code == 200
    assert [row.pk for row in response.context["cl"].result_list] == [activity.pk]
    assert "delete_selected" not in response.content.decode()


def test_activity_log_has_no_add(admin_client: Client, activity: ActivityLog) -> None:
    add_url = reverse("admin:molecule_activitylog_add")
    assert add_url not in admin_client.get(ACTIVITY).content.decode()
    assert admin_client.get(add_url).status_code == 403
    assert admin_client.post(add_url, {"activity_type": "forged"}).status_code == 403
    assert list(ActivityLog.objects.values_list("pk", flat=True)) == [activity.pk]


def test_activity_log_change_view_is_read_only(admin_client: Client, activity: ActivityLog) -> None:
    url = reverse("admin:molecule_activitylog_change", args=[activity.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    assert admin_client.post(url, {"summary": "rewritten"}).status_code == 403
    activity.refresh_from_db()
    assert activity.summary == "hi"


def test_activity_log_has_no_delete(admin_client: Client, activity: ActivityLog) -> None:
    url = reverse("admin:molecule_activitylog_delete", args=[activity.pk])
    assert admin_client.get(url).status_code == 403
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    admin_client.post(ACTIVITY, {"action": "delete_selected", "_selected_action": [activity.pk]})
    assert ActivityLog.objects.filter(pk=activity.pk).exists()


# --- Product name, short ids, machine-written fields ------------------------------------------


def test_the_admin_names_the_product(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert '<a href="/admin/">Molecule uploads administration</a>' in html
    assert "<title>Workspaces, pending uploads and jobs | Molecule uploads admin</title>" in html
    assert "Django administration" not in html


def test_workspace_ids_are_short_with_the_full_value_on_hover(
    admin_client: Client, register: Register
) -> None:
    workspace = register("shorty").workspace
    html = admin_client.get(WORKSPACES).content.decode()
    assert f'<span class="uuid" title="{workspace.id}">{str(workspace.id)[:8]}</span>' in html
    assert row_cells(html, str(workspace.id))["short_id"] == str(workspace.id)[:8]


MACHINE_FIELDS = ("name", "delivery_mode", "url", "active_tasks", "current_task")


def test_machine_written_fields_are_read_only(admin_client: Client, register: Register) -> None:
    workspace = register("agent-7", "poll", active_tasks=2, current_task="indexing").workspace
    url = reverse("admin:molecule_workspace_change", args=[workspace.id])
    html = admin_client.get(url).content.decode()
    for field in MACHINE_FIELDS:
        assert f'name="{field}"' not in html, field
        assert f"field-{field}" in html, field
    assert '<select name="status"' in html

    response = admin_client.post(
        url,
        {
            "status": "removed",
            "name": "forged",
            "delivery_mode": "push",
            "url": "http://evil.example",
            "active_tasks": "0",
            "current_task": "",
            "token_hash": "0" * 64,
            "platform_inbound_secret_sealed": "forged",
        },
    )

    assert response.status_code == 302
    after = Workspace.objects.get(pk=workspace.pk)
    assert after.status == "removed"
    assert (after.name, after.delivery_mode, after.url) == ("agent-7", "poll", None)
    assert (after.active_tasks, after.current_task) == (2, "indexing")
    assert after.token_hash == workspace.token_hash
    assert after.platform_inbound_secret_sealed == workspace.platform_inbound_secret_sealed


def test_compact_time_of_nothing_is_a_dash() -> None:
    assert compact_time(None) == "-"
    shown = compact_time(datetime(2024, 3, 5, 14, 7, 9, tzinfo=UTC))
    assert shown == (
        '<time datetime="2024-03-05T14:07:09+00:00" title="2024-03-05 14:07:09 UTC">'
        "2024-03-05 14:07</time>"
    )


# --- Activity bodies at any depth -------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + '"deep"' + "]" * depth


# 900 and 921: as deep as the API accepts through gunicorn; 5,000: only plain SQL writes
# those, past any Python parser's recursion. Inserted with SQL, as the test's own stack is
# deeper than a gunicorn thread's.
@pytest.mark.parametrize("depth", [900, 921, 5000])
def test_a_body_nested_at_any_depth_renders(
    admin_client: Client, register: Register, depth: int
) -> None:
    ws = register("deep").workspace
    row_id = run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, request_body, response_body) "
        'VALUES (%s, \'agent_log\', %s::jsonb, \'{"ok": true, "empty": {}, "list": []}\') '
        "RETURNING id",
        [ws.id, nested(depth)],
    )[0][0]

    page = admin_client.get(reverse("admin:molecule_activitylog_change", args=[row_id]))

    assert page.status_code == 200
    html = page.content.decode()
    assert "&quot;deep&quot;" in html
    assert "&quot;empty&quot;: {}" in html
    assert admin_client.get(ACTIVITY).status_code == 200


JSON_PRETTY = {
    "scalars": ("1", "1"),
    "null": ("null", "null"),
    "object": ('{"a": 1, "b": "x, y: {z}"}', '{\n  "a": 1,\n  "b": "x, y: {z}"\n}'),
    "escapes": ('["q\\"uote", "back\\\\"]', '[\n  "q\\"uote",\n  "back\\\\"\n]'),
    "empty containers": ('{"a": {}, "b": []}', '{\n  "a": {},\n  "b": []\n}'),
    "nesting": ("[[1]]", "[\n  [\n    1\n  ]\n]"),
}


@pytest.mark.parametrize(("text", "pretty"), JSON_PRETTY.values(), ids=JSON_PRETTY)
def test_json_pretty(text: str, pretty: str) -> None:
    assert json_pretty(text) == pretty


def test_json_pretty_caps_the_indent_and_the_length() -> None:
    deep = json_pretty(nested(100))
    assert max(len(line) - len(line.lstrip()) for line in deep.splitlines()) == 2 * MAX_INDENT

    long = json_pretty("[" + ", ".join(['"' + "x" * 100 + '"'] * 1000) + "]", limit=1000)
    assert long.endswith("\n… (truncated: 104,000 bytes in all)")
    assert len(long) < 1200
