"""The activity feed: the poll, a client's report and the ack."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse

from molecule import conf, quotas
from molecule.attachments import attachments_from_request_body
from molecule.http.auth import workspace_admit, workspace_auth, workspace_credentials
from molecule.http.bodies import declared_length, json_field, json_object, json_text, parse_uuid
from molecule.http.params import (
    LIMIT_DEFAULT,
    LIMIT_MAX,
    query_limit,
    query_positive_int,
    query_timestamp,
    query_uuid,
)
from molecule.http.responses import ApiError, ApiResponse, api_view, quota_refused
from molecule.managers import FeedFilters, FeedRow
from molecule.models import ActivityLog, Workspace
from molecule.services.activity import activity_report, inbox_ack


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
        stored = inbox_ack(workspace_id=workspace.id, acked_seq=acked_seq)
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
    error_detail = json_text(body, "error_detail", None)
    try:
        activity_report(
            workspace_id=workspace.id,
            body_bytes=len(request.body),
            activity_type=activity_type,
            method=json_text(body, "method", limit=200),
            summary=json_text(body, "summary"),
            source_id=source_id,
            target_id=_optional_uuid(body, "target_id"),
            # Upstream falls back to "metadata" when there is no request_body.
            request_body=body.get("request_body", body.get("metadata")),
            response_body=body.get("response_body"),
            duration_ms=duration_ms,
            status=json_text(body, "status", "ok", limit=200) or "ok",
            error_detail=error_detail or None,
        )
    except quotas.QuotaExceeded as exc:
        raise quota_refused(exc) from None
    return ApiResponse({"status": "logged"})
