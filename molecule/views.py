"""Registry, heartbeat and activity endpoints, plus JSON error pages and the guarded /metrics."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from molecule import conf, quotas, services
from molecule.addresses import AddressRefused
from molecule.attachments import attachments_from_request_body
from molecule.exposition import metrics_page
from molecule.http import (
    BEARER_CHALLENGE,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    ApiError,
    ApiResponse,
    api_view,
    bearer_token,
    declared_length,
    json_error,
    json_field,
    json_object,
    parse_uuid,
    query_limit,
    query_positive_int,
    query_timestamp,
    query_uuid,
    quota_refused,
    workspace_admit,
    workspace_auth,
    workspace_authenticate,
    workspace_credentials,
)
from molecule.managers import FeedFilters, FeedRow
from molecule.models import ActivityLog, Workspace
from molecule.tokens import token_hash, token_matches

MAX_TEXT = 10_000


def _text(body: dict[str, Any], name: str, default: Any = "", limit: int = MAX_TEXT) -> Any:
    value = json_field(body, name, str, default)
    if value is not None and len(value) > limit:
        raise ApiError(400, f"{name} is longer than {limit} characters")
    return value


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
    name = _text(agent_card, "name", "", limit=200)
    if url is None and delivery_mode == Workspace.DeliveryMode.PUSH:
        # Upstream's fallback: a push workspace may name its URL in its agent card only.
        url = _url(json_field(agent_card, "url", str, None), "agent_card.url")
    try:
        registration = services.workspace_register(
            workspace_id=workspace_id,
            name=name,
            delivery_mode=delivery_mode,
            url=url,
            bearer_token=bearer_token(request),
        )
    except (services.PushUrlMissing, AddressRefused) as exc:
        raise ApiError(400, str(exc)) from None
    except services.WorkspaceRemovedError:
        raise ApiError(401, "this workspace was removed; it cannot register again") from None
    except services.WorkspaceAuthError:
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
        rotation = services.workspace_token_rotate(workspace=workspace)
    except services.TokenRotationRefused:
        raise ApiError(403, "a token is rotated with the workspace's own token") from None
    except services.TokenRotationRaced:
        raise ApiError(409, "the workspace changed meanwhile (another rotation?); retry") from None
    response = ApiResponse(
        {
            "auth_token": rotation.auth_token,
            "previous_token_expires_at": rotation.previous_expires_at.isoformat(),
        }
    )
    # The answer carries a token: no cache between us and the agent may keep it.
    response["Cache-Control"] = "no-store"
    return response


@api_view("POST")
def heartbeat(request: HttpRequest) -> HttpResponse:
    body = json_object(request)
    workspace_id = parse_uuid(json_field(body, "workspace_id", str), "workspace_id")
    # Optional, as upstream's runtime sends it; unknown fields (is_busy, ...) are ignored.
    active_tasks = json_field(body, "active_tasks", int, 0)
    if not 0 <= active_tasks <= 2**31 - 1:
        raise ApiError(400, "active_tasks must be a non-negative integer")
    current_task = _text(body, "current_task")
    token = bearer_token(request)
    workspace = Workspace.objects.authenticate(workspace_id, token) if token else None
    if workspace is None:
        raise ApiError(401, "missing or invalid bearer token for this workspace")
    secret = services.workspace_heartbeat(
        workspace=workspace, active_tasks=active_tasks, current_task=current_task
    )
    answer: dict[str, Any] = {"status": "ok"}
    if secret is not None:
        answer["platform_inbound_secret"] = secret
    return _secret_answer(answer)


def _activity_json(row: FeedRow, workspace_id: str, *, peer_info: str | None) -> dict[str, Any]:
    """One feed row in upstream's shape; ``peer_info`` is None without include=peer_info, else
    the platform URL for agent_card_url ('' when unset), read once per page."""
    answer = {
        "id": row.id,
        "workspace_id": workspace_id,
        "activity_type": row.activity_type,
        "source_id": str(row.source_id) if row.source_id else None,
        "target_id": str(row.target_id) if row.target_id else None,
        "method": row.method,
        "summary": row.summary,
        "request_body": row.request_body,
        "response_body": row.response_body,
        "duration_ms": row.duration_ms,
        "status": row.status,
        "error_detail": row.error_detail,
        "created_at": row.created_at.isoformat(),
        "seq": row.seq,
    }
    if peer_info is not None:
        answer.update(_peer_info(row, peer_info))
    return answer


def _peer_info(row: FeedRow, platform: str) -> dict[str, Any]:
    """include=peer_info's keys, each left out when it has no value. No peer_role: this
    service keeps no roles, so upstream's role is never known here."""
    info: dict[str, Any] = {}
    if row.peer_name:
        info["peer_name"] = row.peer_name
    if platform and row.source_id:
        info["agent_card_url"] = f"{platform}/registry/discover/{row.source_id}"
    attachments = attachments_from_request_body(row.request_body)
    if attachments:
        info["attachments"] = attachments
    return info


def _optional_uuid(body: dict[str, Any], name: str) -> Any:
    value = json_field(body, name, str, None)
    return parse_uuid(value, name) if value else None


@api_view("GET", "POST")
def activity(request: HttpRequest, workspace_id: str) -> HttpResponse:
    if request.method == "POST":
        return _activity_report(request, workspace_id)
    return _activity_feed(request, workspace_id)


def _feed_filters(request: HttpRequest) -> FeedFilters:
    """The feed's query parameters; 400 for the first one that is invalid.

    A poller that starts without a cursor asks for its backlog as ``since_secs`` with no
    ``limit`` (the runtime's first poll: ``since_secs=600``) and takes the newest page as all
    there is: the default page of 100 would drop the oldest rows of a busier window without a
    word. That one request gets the whole window up to the cap (LIMIT_MAX) instead.
    """
    peer_id = query_uuid(request, "peer_id")
    before = query_timestamp(request, "before_ts")
    activity_type = request.GET.get("type") or None
    if activity_type is not None and "\x00" in activity_type:
        raise ApiError(400, "type must not contain NUL")
    source = request.GET.get("source") or None
    if source not in (None, "canvas", "agent"):
        raise ApiError(400, "source must be 'canvas' or 'agent'")
    since_secs = query_positive_int(request, "since_secs")
    backlog = since_secs is not None and not request.GET.get("since_id")
    limit = query_limit(request, default=LIMIT_MAX if backlog else LIMIT_DEFAULT)
    # Comma-separated flags, as upstream reads them; unknown ones are ignored.
    peer_info = "peer_info" in {flag.strip() for flag in request.GET.get("include", "").split(",")}
    return FeedFilters(
        activity_type=activity_type,
        source=source,
        peer_id=peer_id,
        before=before,
        since_seconds=None
        if since_secs is None
        else min(since_secs, conf.ACTIVITY_MAX_SINCE_SECONDS),
        limit=limit,
        peer_info=peer_info,
    )


def _activity_feed(request: HttpRequest, workspace_id: str) -> HttpResponse:
    """The poll: authentication, the cursor and the page come from one statement."""
    parsed_id, token = workspace_credentials(request, workspace_id)
    try:
        filters = _feed_filters(request)
    except ApiError:
        # Authentication answers first, as on every route: a stranger gets 401, never a 400.
        workspace_admit(Workspace.objects.credentials(parsed_id), token)
        raise
    page = ActivityLog.objects.feed(
        parsed_id, since_id=request.GET.get("since_id") or None, filters=filters
    )
    workspace = workspace_admit(page.workspace, token)
    if not page.cursor_found:
        # 410, not 400: the poller resets its cursor on 410 and would retry a 400 forever.
        raise ApiError(
            410,
            "since_id cursor not found (pruned, another workspace's, or not an activity id); "
            "omit since_id to reset",
        )
    text_id = str(workspace.id)
    platform = conf.external_platform_url().rstrip("/") if filters.peer_info else None
    return ApiResponse([_activity_json(row, text_id, peer_info=platform) for row in page.rows])


# acked_seq is stored as a bigint; like upstream's int64, anything outside is not an integer.
_BIGINT = range(-(2**63), 2**63)


@api_view("POST")
@workspace_auth
def activity_ack(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """Upstream's ack: {"acked_seq": n} moves the workspace's mark forward, never back.

    The workspace is the authenticated one from the path; a workspace_id in the body is
    ignored, as upstream ignores it.
    """
    try:
        body = json_object(request)
    except ApiError as exc:
        if exc.status != 400:
            raise
        # Upstream answers every body it cannot bind with the same message.
        body = {}
    acked_seq = body.get("acked_seq")
    # bool is an int in Python; neither it nor a float (5.0 included) is an integer here.
    if type(acked_seq) is not int or acked_seq not in _BIGINT:
        raise ApiError(400, "acked_seq is required")
    if acked_seq < 0:
        raise ApiError(400, "acked_seq must be >= 0")
    try:
        stored = services.inbox_ack(workspace_id=workspace.id, acked_seq=acked_seq)
    except IntegrityError:
        # The workspace was deleted after it authenticated.
        raise ApiError(500, "failed to record ack") from None
    return ApiResponse({"last_acked_seq": stored})


@workspace_auth
def _activity_report(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    try:
        # Before the body is read: what it would add cannot fit this window.
        quotas.quota_precheck(
            workspace_id=workspace.id,
            quota=quotas.ACTIVITY_BYTES,
            amount=declared_length(request) or 0,
        )
    except quotas.QuotaExceeded as exc:
        raise quota_refused(exc) from None
    body = json_object(request)
    activity_type = json_field(body, "activity_type", str)
    if activity_type not in ActivityLog.Type.values:
        raise ApiError(400, "activity_type must be one of: " + ", ".join(ActivityLog.Type.values))
    source_id = _optional_uuid(body, "source_id")
    # The operator (canvas) tier writes what it names, null being the canvas user; a workspace's
    # own report defaults to itself and, by upstream's spoof guard, may name only itself.
    if not workspace.by_admin_token:
        if source_id is None:
            source_id = workspace.id
        elif source_id != workspace.id:
            raise ApiError(403, "source_id must be the authenticated workspace")
    duration_ms = json_field(body, "duration_ms", int, None)
    if duration_ms is not None and not 0 <= duration_ms <= 2**31 - 1:
        raise ApiError(400, "duration_ms must be a non-negative 32-bit integer")
    error_detail = _text(body, "error_detail", None)
    try:
        services.activity_report(
            workspace_id=workspace.id,
            body_bytes=len(request.body),
            activity_type=activity_type,
            method=_text(body, "method", limit=200),
            summary=_text(body, "summary"),
            source_id=source_id,
            target_id=_optional_uuid(body, "target_id"),
            # Upstream falls back to "metadata" when there is no request_body.
            request_body=body.get("request_body", body.get("metadata")),
            response_body=body.get("response_body"),
            duration_ms=duration_ms,
            status=_text(body, "status", "ok", limit=200) or "ok",
            error_detail=error_detail or None,
        )
    except quotas.QuotaExceeded as exc:
        raise quota_refused(exc) from None
    return ApiResponse({"status": "logged"})


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; behind METRICS_TOKEN when it is set."""
    expected = settings.METRICS_TOKEN
    if expected:
        token = bearer_token(request) or ""
        if not token_matches(token, token_hash(expected)):
            return json_error(401, "metrics need the METRICS_TOKEN bearer token")
    body, content_type = metrics_page()
    return HttpResponse(body, content_type=content_type)


@api_view("GET")
def proxy_auth(request: HttpRequest) -> HttpResponse:
    """nginx's auth_request: may the request for X-Original-URI have its body read?

    204 when its bearer token opens the workspace the URI names, with the same check as the
    route itself. Otherwise 401 (auth_request's only refusal) carrying what the route would
    answer, for nginx to send as JSON: X-Molecule-Status (400 for a malformed workspace id, 404
    for a URI that names no workspace route, else 401), X-Molecule-Error (the message) and the
    401's WWW-Authenticate. The original request's body is never sent here.
    """
    path = unquote(urlsplit(request.headers.get("X-Original-URI", "")).path)
    try:
        workspace_id = resolve(path).kwargs.get("workspace_id")
    except Resolver404:
        workspace_id = None
    try:
        if workspace_id is None:
            raise ApiError(404, "not found")
        workspace_authenticate(request, workspace_id)
    except ApiError as exc:
        response = HttpResponse(status=401)
        response["X-Molecule-Status"] = str(exc.status)
        response["X-Molecule-Error"] = exc.message
        if exc.status == 401:
            response["WWW-Authenticate"] = BEARER_CHALLENGE
        return response
    return HttpResponse(status=204)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(404, "not found")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(400, "bad request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(403, "forbidden")


def server_error(request: HttpRequest) -> HttpResponse:
    return json_error(500, "internal error")
