"""The API's own middleware chain; statement_timeout on every session, and a statement that hits
it answered as a clean 503."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import HttpResponse
from django.test import Client, override_settings

from molecule.middleware import SKIPPED_FOR_API, ApiHandler, ApiRoutingMiddleware
from molecule.models import ActivityLog
from tests.helpers import (
    RegisteredWorkspace,
    assert_json_error,
    assert_metric_delta,
    body_of,
    make_upload,
    metric_value,
    metrics_saved,
)


@pytest.mark.django_db
def test_every_session_runs_with_the_default_statement_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("30s",)


def test_a_statement_over_the_timeout_is_503_and_the_next_request_is_served(
    transactional_db, register, monkeypatch
):
    ws: RegisteredWorkspace = register("slow", "poll")
    api = Client()
    real_feed = ActivityLog.objects.feed

    def slow_feed(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(5)")
        return real_feed(*args, **kwargs)

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '200ms'")
    try:
        monkeypatch.setattr(ActivityLog.objects, "feed", slow_feed)
        slow = api.get(ws.url("activity"), **ws.auth)
        monkeypatch.setattr(ActivityLog.objects, "feed", real_feed)
        after = api.get(ws.url("activity"), **ws.auth)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")

    body = assert_json_error(slow, 503)
    assert "took too long" in body["error"]
    assert slow["Retry-After"] == "5"
    assert (after.status_code, after.content) == (200, b"[]")


# --- the API's own middleware chain ------------------------------------------------------------

ROUTER = "molecule.middleware.ApiRoutingMiddleware"
# The stack as it was before API routes had a chain of their own: every request through all.
WHOLE_STACK = [path for path in settings.MIDDLEWARE if path != ROUTER]
PROMETHEUS_BY_VIEW = "django_http_requests_total_by_view_transport_method_total"
PROMETHEUS_BEFORE = "django_http_requests_before_middlewares_total"


def test_api_routes_skip_the_admins_middleware_and_keep_the_rest_in_order():
    router = ApiRoutingMiddleware(lambda request: HttpResponse())

    assert settings.MIDDLEWARE[0] == ROUTER
    assert router.api_middleware == [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "molecule.middleware.JsonNotFoundMiddleware",
        "molecule.middleware.DatabaseUnavailableMiddleware",
    ]
    assert router.api_middleware == [p for p in WHOLE_STACK if p not in SKIPPED_FOR_API]


def _requests(ws: RegisteredWorkspace, file_id: str, cursor: int) -> dict[str, Callable]:
    """Requests to send through both stacks: every kind of API answer, each repeatable."""
    activity = ws.url("activity")
    upload = SimpleUploadedFile("a.txt", b"hi", content_type="text/plain")
    return {
        "limits": lambda c: c.get("/uploads/limits"),
        "head poll": lambda c: c.get(activity, {"since_id": cursor}, **ws.auth),
        "page": lambda c: c.get(activity, {"include": "peer_info"}, **ws.auth),
        "401": lambda c: c.get(activity, HTTP_AUTHORIZATION="Bearer nope"),
        "401 no token": lambda c: c.get(activity),
        "410": lambda c: c.get(activity, {"since_id": "12abc"}, **ws.auth),
        "400 limit": lambda c: c.get(activity, {"limit": "x"}, **ws.auth),
        "400 id": lambda c: c.get("/workspaces/not-a-uuid/activity", **ws.auth),
        "405": lambda c: c.put(activity, **ws.auth),
        "404": lambda c: c.get(ws.url("nothing-here"), **ws.auth),
        "404 slash": lambda c: c.get(ws.url("activity/"), **ws.auth),
        "400 host": lambda c: c.get("/uploads/limits", HTTP_HOST="evil.example"),
        "report": lambda c: c.post(
            activity, {"activity_type": "agent_log"}, content_type="application/json", **ws.auth
        ),
        "415": lambda c: c.post(activity, "x=1", content_type="text/plain", **ws.auth),
        "content": lambda c: c.get(ws.url(f"pending-uploads/{file_id}/content"), **ws.auth),
        "ack": lambda c: c.post(ws.url(f"pending-uploads/{file_id}/ack"), **ws.auth),
        "feed ack": lambda c: c.post(
            ws.url("activity/ack"), {"acked_seq": 1}, content_type="application/json", **ws.auth
        ),
        "upload 422": lambda c: c.post(ws.url("chat/uploads"), {"files": [upload]}, **ws.auth),
        "heartbeat 401": lambda c: c.post(
            "/registry/heartbeat",
            {"workspace_id": str(ws.id)},
            content_type="application/json",
        ),
        "register 401": lambda c: c.post(
            "/registry/register",
            {"id": str(ws.id), "delivery_mode": "push"},
            content_type="application/json",
        ),
    }


@pytest.mark.django_db
def test_every_api_answer_is_the_same_through_its_own_chain_as_through_the_whole_stack(
    register,
):
    # Push mode, so the upload is a repeatable 422; a file of its own to fetch and ack.
    ws: RegisteredWorkspace = register("same <answers>", "push")
    row = make_upload(workspace_id=ws.id)
    cursor = ActivityLog.objects.create(workspace_id=ws.id, activity_type="agent_log").id

    for name, send in _requests(ws, str(row.file_id), cursor).items():
        routed = send(Client(enforce_csrf_checks=True))
        with override_settings(MIDDLEWARE=WHOLE_STACK):
            whole = send(Client(enforce_csrf_checks=True))

        assert routed.status_code == whole.status_code, name
        assert sorted(routed.items()) == sorted(whole.items()), name
        assert body_of(routed) == body_of(whole), name
        assert not routed.cookies, name


@pytest.mark.django_db
def test_the_admin_keeps_its_session_csrf_and_messages(admin_client):
    login = Client().get("/admin/login/")
    assert "csrftoken" in login.cookies
    assert "Cookie" in login["Vary"]

    page = admin_client.get("/admin/molecule/workspace/")

    assert page.status_code == 200
    assert page.wsgi_request.user.is_superuser
    assert hasattr(page.wsgi_request, "_messages")


@pytest.mark.django_db
def test_api_requests_are_counted_but_not_broken_down_by_view(register):
    ws: RegisteredWorkspace = register("counted", "poll")
    by_view = {"transport": "http", "method": "GET"}
    # The series exists only once some request counted it: absent (None) stays absent.
    api_before = metric_value(PROMETHEUS_BY_VIEW, view="workspace-activity", **by_view)
    saved = metrics_saved()

    assert Client().get(ws.url("activity"), **ws.auth).status_code == 200
    assert Client().get("/admin/login/").status_code == 200

    assert_metric_delta(saved, 2, PROMETHEUS_BEFORE)
    assert metric_value(PROMETHEUS_BY_VIEW, view="workspace-activity", **by_view) == api_before
    assert_metric_delta(saved, 1, PROMETHEUS_BY_VIEW, view="admin:login", **by_view)


class Unused:
    def __init__(self, get_response: Callable) -> None:
        raise MiddlewareNotUsed


class Hooked:
    """A middleware with every hook Django's handler knows, recording the ones it ran."""

    seen: list[str] = []

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        self.seen.append("view")

    def process_template_response(self, request: Any, response: Any) -> Any:
        return response

    def process_exception(self, request: Any, exception: Exception) -> None:
        self.seen.append("exception")


def test_the_api_chain_keeps_djangos_middleware_hooks(rf):
    handler = ApiHandler([f"{__name__}.Unused", f"{__name__}.Hooked"])
    Hooked.seen.clear()

    response = handler._middleware_chain(rf.get("/uploads/limits"))

    assert response.status_code == 200
    assert Hooked.seen == ["view"]
    assert len(handler._template_response_middleware) == 1
    assert len(handler._exception_middleware) == 1
