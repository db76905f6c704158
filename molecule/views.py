"""Registry, heartbeat and activity endpoints, plus JSON error pages and the guarded /metrics."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from molecule import services
from molecule.exposition import metrics_page
from molecule.http import (
    REQUIRED,
    ApiError,
    api_view,
    bearer_token,
    json_error,
    json_field,
    json_object,
    parse_uuid,
    query_int,
    workspace_auth,
)
from molecule.models import ActivityLog, Workspace
from molecule.tokens import token_hash, token_matches

MAX_TEXT = 10_000


def _text(body: dict[str, Any], name: str, default: Any = "", limit: int = MAX_TEXT) -> str:
    value = json_field(body, name, str, default)
    if len(value) > limit:
        raise ApiError(400, f"{name} is longer than {limit} characters")
    return value


@api_view("POST")
def register(request: HttpRequest) -> HttpResponse:
    body = json_object(request)
    workspace_id = parse_uuid(json_field(body, "id", str), "id")
    delivery_mode = json_field(body, "delivery_mode", str, Workspace.DeliveryMode.PUSH)
    if delivery_mode not in Workspace.DeliveryMode.values:
        raise ApiError(400, "delivery_mode must be 'poll' or 'push'")
    url = json_field(body, "url", str, None)
    if url is not None and (len(url) > 2048 or not url.startswith(("http://", "https://"))):
        raise ApiError(400, "url must be an http(s) URL of at most 2048 characters")
    agent_card = json_field(body, "agent_card", dict, {})
    name = _text(agent_card, "name", "", limit=200)
    try:
        registration = services.workspace_register(
            workspace_id=workspace_id,
            name=name,
            delivery_mode=delivery_mode,
            url=url,
            bearer_token=bearer_token(request),
        )
    except services.WorkspaceAuthError:
        raise ApiError(
            401, "this workspace is registered; re-registering needs its bearer token"
        ) from None
    answer: dict[str, Any] = {"status": "registered", "id": str(registration.workspace.id)}
    if registration.auth_token is not None:
        answer["auth_token"] = registration.auth_token
    return JsonResponse(answer)


@api_view("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    body = json_object(request)
    workspace_id = parse_uuid(json_field(body, "workspace_id", str), "workspace_id")
    active_tasks = json_field(body, "active_tasks", int)
    if not 0 <= active_tasks <= 2**31 - 1:
        raise ApiError(400, "active_tasks must be a non-negative integer")
    current_task = _text(body, "current_task")
    token = bearer_token(request)
    workspace = Workspace.objects.authenticate(workspace_id, token) if token else None
    if workspace is None:
        raise ApiError(401, "missing or invalid bearer token for this workspace")
    services.workspace_heartbeat(
        workspace=workspace, active_tasks=active_tasks, current_task=current_task
    )
    return JsonResponse({"status": "ok"})


def _activity_json(row: ActivityLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "activity_type": row.activity_type,
        "method": row.method,
        "summary": row.summary,
        "request_body": row.request_body,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
    }


@api_view("GET", "POST")
@workspace_auth
def activity(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    if request.method == "POST":
        body = json_object(request)
        activity_type = _text(body, "activity_type", REQUIRED, limit=200)
        if not activity_type:
            raise ApiError(400, "activity_type must not be empty")
        row = services.activity_append(
            workspace_id=workspace.id,
            activity_type=activity_type,
            method=_text(body, "method", limit=200),
            summary=_text(body, "summary"),
            request_body=body.get("request_body"),
            status=_text(body, "status", "ok", limit=200),
        )
        return JsonResponse(_activity_json(row), status=201)
    activity_type = request.GET.get("type") or None
    if activity_type is not None and "\x00" in activity_type:
        raise ApiError(400, "type must not contain NUL")
    rows = ActivityLog.objects.for_workspace(
        workspace.id,
        activity_type=activity_type,
        since_id=query_int(request, "since_id", None, 0, 2**63 - 1),
        limit=query_int(request, "limit", 100, 1, 500),
    )
    return JsonResponse([_activity_json(row) for row in rows], safe=False)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; behind METRICS_TOKEN when it is set."""
    expected = settings.METRICS_TOKEN
    if expected:
        token = bearer_token(request) or ""
        if not token_matches(token, token_hash(expected)):
            return json_error(401, "metrics need the METRICS_TOKEN bearer token")
    body, content_type = metrics_page()
    return HttpResponse(body, content_type=content_type)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(404, "not found")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(400, "bad request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(403, "forbidden")


def server_error(request: HttpRequest) -> HttpResponse:
    return json_error(500, "internal error")
