"""The registry: register a workspace, its heartbeat, and the rotation of its token."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

from molecule.addresses import AddressRefused
from molecule.http.auth import bearer_token, workspace_auth
from molecule.http.bodies import json_field, json_object, json_text, parse_uuid
from molecule.http.responses import ApiError, ApiResponse, api_view
from molecule.models import Workspace
from molecule.services.workspaces import (
    PushUrlMissing,
    TokenRotationRaced,
    TokenRotationRefused,
    WorkspaceAuthError,
    WorkspaceRemovedError,
    workspace_heartbeat,
    workspace_register,
    workspace_token_rotate,
)


def _url(value: Any, name: str) -> str | None:
    if value is not None and (len(value) > 2048 or not value.startswith(("http://", "https://"))):
        raise ApiError(400, f"{name} must be an http(s) URL of at most 2048 characters")
    return value or None


@api_view("POST")
def register(request: HttpRequest) -> HttpResponse:
    body = json_object(request)
    workspace_id = parse_uuid(json_field(body, "id", str), "id")
    delivery_mode = json_field(body, "delivery_mode", str, Workspace.DeliveryMode.PUSH)
    if delivery_mode not in Workspace.DeliveryMode.values:
        raise ApiError(400, "delivery_mode must be 'poll' or 'push'")
    url = _url(json_field(body, "url", str, None), "url")
    agent_card = json_field(body, "agent_card", dict, {})
    name = json_text(agent_card, "name", "", limit=200)
    if url is None and delivery_mode == Workspace.DeliveryMode.PUSH:
        # Upstream's fallback: a push workspace may name its URL in its agent card only.
        url = _url(json_field(agent_card, "url", str, None), "agent_card.url")
    try:
        registration = workspace_register(
            workspace_id=workspace_id,
            name=name,
            delivery_mode=delivery_mode,
            url=url,
            bearer_token=bearer_token(request),
        )
    except (PushUrlMissing, AddressRefused) as exc:
        raise ApiError(400, str(exc)) from None
    except WorkspaceRemovedError:
        raise ApiError(401, "this workspace was removed; it cannot register again") from None
    except WorkspaceAuthError:
        raise ApiError(
            401, "this workspace is registered; re-registering needs its bearer token"
        ) from None
    answer: dict[str, Any] = {
        "status": "registered",
        "id": str(registration.workspace.id),
        "delivery_mode": registration.workspace.delivery_mode,
    }
    if registration.auth_token is not None:
        answer["auth_token"] = registration.auth_token
    answer["platform_inbound_secret"] = registration.platform_inbound_secret
    return _secret_answer(answer)


def _secret_answer(answer: dict[str, Any]) -> ApiResponse:
    response = ApiResponse(answer)
    # The answer carries a token or the inbound secret: no cache between us and the agent may
    # keep it.
    response["Cache-Control"] = "no-store"
    return response


@api_view("POST")
@workspace_auth
def token_rotate(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """A new bearer token for the workspace, answered once (an addition: upstream has none)."""
    try:
        rotation = workspace_token_rotate(workspace=workspace)
    except TokenRotationRefused:
        raise ApiError(403, "a token is rotated with the workspace's own token") from None
    except TokenRotationRaced:
        raise ApiError(409, "the workspace changed meanwhile (another rotation?); retry") from None
    return _secret_answer(
        {
            "auth_token": rotation.auth_token,
            "previous_token_expires_at": rotation.previous_expires_at.isoformat(),
        }
    )


@api_view("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    body = json_object(request)
    workspace_id = parse_uuid(json_field(body, "workspace_id", str), "workspace_id")
    # Optional, as upstream's runtime sends it; unknown fields (is_busy, ...) are ignored.
    active_tasks = json_field(body, "active_tasks", int, 0)
    if not 0 <= active_tasks <= 2**31 - 1:
        raise ApiError(400, "active_tasks must be a non-negative integer")
    current_task = json_text(body, "current_task")
    token = bearer_token(request)
    workspace = Workspace.objects.authenticate(workspace_id, token) if token else None
    if workspace is None:
        raise ApiError(401, "missing or invalid bearer token for this workspace")
    secret = workspace_heartbeat(
        workspace=workspace, active_tasks=active_tasks, current_task=current_task
    )
    answer: dict[str, Any] = {"status": "ok"}
    if secret is not None:
        answer["platform_inbound_secret"] = secret
    return _secret_answer(answer)
