"""Compact, Go-style JSON on every answer of the service, errors included."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.test import Client, RequestFactory, override_settings

from molecule.http.bodies import declared_length
from molecule.http.responses import ApiError, ApiResponse
from molecule.middleware import DatabaseUnavailableMiddleware
from molecule.views import errors
from tests.helpers import RegisteredWorkspace

pytestmark = pytest.mark.django_db


def assert_compact(content: bytes) -> None:
    """No whitespace outside strings: re-encoding compactly gives the same bytes."""
    decoded = json.loads(content)
    compact = json.dumps(decoded, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        compact = compact.replace(char, escape)
    assert content.decode("utf-8") == compact


def test_strings_are_escaped_as_go_escapes_them():
    response = ApiResponse({"html": "<b>&amp;</b>", "text": "été ✓", "sep": "a\u2028b\u2029"})

    assert (
        response.content
        == (
            '{"html":"\\u003cb\\u003e\\u0026amp;\\u003c/b\\u003e","text":"été ✓",'
            '"sep":"a\\u2028b\\u2029"}'
        ).encode()
    )
    assert response["Content-Type"] == "application/json"


@override_settings(METRICS_TOKEN="scrape-secret")
def test_every_route_answers_compact_json_errors_included(register):
    api = Client()
    ws: RegisteredWorkspace = register("compact <&>", "poll")
    push: RegisteredWorkspace = register("pusher", "push")
    new_id = uuid.uuid4()
    file_id = uuid.uuid4()
    upload = api.post(
        ws.url("chat/uploads"), {"files": SimpleUploadedFile("a<b>.txt", b"x")}, **ws.auth
    )
    no_files = api.post(ws.url("chat/uploads"), {}, **ws.auth)
    requests = [
        ("post", "/registry/register", {"id": str(new_id), "delivery_mode": "poll"}, {}),
        ("post", "/registry/register", {"id": "nope"}, {}),
        ("post", "/registry/register", {"id": str(ws.id)}, {}),
        ("post", "/registry/heartbeat", {"workspace_id": str(ws.id)}, ws.auth),
        ("post", "/registry/heartbeat", {"workspace_id": str(ws.id), "active_tasks": "1"}, {}),
        ("post", ws.url("activity"), {"activity_type": "agent_log", "summary": "<&>"}, ws.auth),
        ("post", ws.url("activity"), {"activity_type": "nope"}, ws.auth),
        ("get", ws.url("activity"), None, ws.auth),
        ("get", ws.url("activity") + "?since_id=abc", None, ws.auth),
        ("get", ws.url("activity") + "?limit=0", None, ws.auth),
        ("get", ws.url("pending-uploads"), None, ws.auth),
        ("get", ws.url("pending-uploads") + "?limit=x", None, ws.auth),
        ("get", ws.url(f"pending-uploads/{file_id}/content"), None, ws.auth),
        ("get", ws.url("pending-uploads/not-a-uuid/content"), None, ws.auth),
        ("post", ws.url(f"pending-uploads/{file_id}/ack"), None, ws.auth),
        ("post", push.url("chat/uploads"), None, push.auth),
        ("get", ws.url("activity"), None, {}),
        ("delete", ws.url("activity"), None, ws.auth),
        ("get", "/uploads/limits", None, {}),
        ("get", "/no/such/route", None, {}),
        ("get", "/metrics", None, {}),
    ]
    statuses = {upload.status_code, no_files.status_code}
    assert_compact(upload.content)
    assert_compact(no_files.content)
    for method, url, body, headers in requests:
        # Development, so the push upload reaches its (closed) loopback port: 502.
        with override_settings(MOLECULE_ENV="development"):
            response = _call(api, method, url, body, headers)
        assert response["Content-Type"] == "application/json", (url, response.status_code)
        assert_compact(response.content)
        statuses.add(response.status_code)

    factory = RequestFactory()
    request = factory.get("/anything")
    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    for response in (
        errors.server_error(request),
        errors.bad_request(request),
        errors.permission_denied(request),
        middleware.process_exception(request, OperationalError("connection refused")),
    ):
        assert_compact(response.content)
        statuses.add(response.status_code)

    # The table reaches every status the service answers with JSON.
    assert {200, 400, 401, 403, 404, 405, 410, 500, 502, 503} <= statuses


def _call(api: Client, method: str, url: str, body: object, headers: dict[str, str]) -> Any:
    if body is None:
        return getattr(api, method)(url, **headers)
    return getattr(api, method)(
        url, data=json.dumps(body), content_type="application/json", **headers
    )


def test_a_content_length_that_is_not_a_number_is_400() -> None:
    request = RequestFactory().post("/", CONTENT_LENGTH="lots")

    with pytest.raises(ApiError) as refused:
        declared_length(request)
    assert refused.value.status == 400
