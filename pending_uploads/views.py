"""The upload API: receive (stored in poll mode, forwarded in push mode), list, fetch, ack."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase

from molecule.http.auth import workspace_auth
from molecule.http.bodies import declared_length, parse_uuid
from molecule.http.params import query_limit
from molecule.http.responses import ApiError, ApiResponse, api_view, json_error, quota_refused
from molecule.models import Workspace
from molecule.quotas import QuotaExceeded
from pending_uploads import conf, forward, quotas, services
from pending_uploads.managers import AckOutcome, FileTooLarge, OpenedContent
from pending_uploads.models import PendingUpload
from pending_uploads.sanitize import FALLBACK_MIMETYPE
from pending_uploads.storage import ObjectMissing, StorageUnavailable

logger = logging.getLogger(__name__)

# Uploaded bytes are the user's, not ours: never let a browser render them in our origin.
ATTACHMENT_CSP = "default-src 'none'; sandbox"
# Seconds a client waits after a 503 because this worker's forwards are all in flight.
FORWARD_BUSY_RETRY_AFTER = 5
# Seconds a client should wait before fetching again when the bucket is unreachable.
STORAGE_RETRY_AFTER = "5"


@api_view("POST")
@workspace_auth
def upload(request: HttpRequest, workspace: Workspace) -> HttpResponseBase:
    declared = declared_length(request)
    if declared is not None and declared > conf.max_request_bytes():
        raise ApiError(413, "request body too large", max=conf.max_request_bytes())
    if workspace.delivery_mode == Workspace.DeliveryMode.PUSH:
        return _upload_forward(request, workspace, declared)
    if request.content_type != "multipart/form-data":
        raise ApiError(400, "expected a multipart/form-data body with parts named files")
    try:
        # Before a byte of the body is read (spooled to a temporary file).
        quotas.uploads_precheck(workspace_id=workspace.id, declared_bytes=declared or 0)
    except QuotaExceeded as exc:
        raise quota_refused(exc) from None
    watch = CloseDelimiterWatch.install(request)
    try:
        files = request.FILES.getlist("files")
    except RequestDataTooBig:
        raise ApiError(413, "request body too large", max=conf.max_request_bytes()) from None
    except (MultiPartParserError, SuspiciousOperation) as exc:
        # SuspiciousOperation covers Django's own part-count limit (TooManyFilesSent).
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    if watch is not None and not watch.seen:
        # Django's parser keeps the parts that completed before a truncated one and drops the
        # rest silently; an upload that was cut off is refused whole instead.
        for part in files:
            part.close()
        raise ApiError(400, "malformed multipart body: it ends before the closing boundary")
    try:
        rows = services.uploads_receive(workspace=workspace, files=files)
    except (services.NoFiles, services.TooManyFiles) as exc:
        raise ApiError(400, str(exc)) from None
    except services.EmptyFile as exc:
        raise ApiError(400, str(exc), filename=exc.filename) from None
    except FileTooLarge as exc:
        raise ApiError(
            413, "file too large", filename=exc.filename, size=exc.size, max=exc.limit
        ) from None
    except QuotaExceeded as exc:
        raise quota_refused(exc) from None
    finally:
        for part in files:
            part.close()
    return ApiResponse({"files": [services.upload_json(row) for row in rows]})


def _upload_forward(
    request: HttpRequest, workspace: Workspace, declared: int | None
) -> HttpResponseBase:
    """Push mode: the body goes to the workspace unparsed, and its answer comes back as is."""
    stream: Any = request
    if declared is None:
        # Django reads no body without a Content-Length; a server that de-chunks (gunicorn)
        # says so in wsgi.input_terminated, and its input then ends where the body does.
        terminated = request.META.get("wsgi.input_terminated")
        stream = request.META["wsgi.input"] if terminated else request
        declared = None if terminated else 0
    body = forward.IncomingBody(stream, request.META.get("CONTENT_TYPE", ""), declared)
    try:
        relay = forward.upload_forward(workspace=workspace, body=body)
    except forward.WorkspaceUrlMissing:
        raise ApiError(503, "workspace url not registered yet") from None
    except forward.InboundSecretMissing:
        raise ApiError(
            503,
            "workspace has no usable platform_inbound_secret; its next registration or "
            "heartbeat mints one",
        ) from None
    except forward.WorkspaceUrlNotAllowed:
        raise ApiError(400, "workspace URL not allowed") from None
    except forward.ForwardBusy:
        response = json_error(
            503,
            "too many uploads to workspaces in flight, retry later",
            retry_after_seconds=FORWARD_BUSY_RETRY_AFTER,
        )
        response["Retry-After"] = str(FORWARD_BUSY_RETRY_AFTER)
        return response
    except forward.WorkspaceUnreachable:
        raise ApiError(502, "workspace unreachable") from None
    except forward.RequestBodyTooLarge:
        raise ApiError(413, "request body too large", max=conf.max_request_bytes()) from None
    except forward.RequestBodyIncomplete:
        # Nobody reads this: the client has gone. The status is for the access log.
        raise ApiError(400, "request body ended before its Content-Length") from None
    response = StreamingHttpResponse(relay, status=relay.status)
    # The workspace's Content-Type only, or none: Django's text/html default would be ours.
    del response["Content-Type"]
    if relay.content_type:
        response["Content-Type"] = relay.content_type
    # The workspace's bytes in our origin: no browser may run them.
    response["Content-Security-Policy"] = ATTACHMENT_CSP
    return response


@api_view("GET")
def limits(request: HttpRequest) -> HttpResponse:
    """Upstream's GET /uploads/limits: the caps every uploader would otherwise learn by a 413."""
    return ApiResponse(
        {
            "per_file_bytes": conf.max_file_bytes(),
            "per_request_bytes": conf.max_request_bytes(),
            "max_attachments_per_message": conf.max_attachments_per_message(),
        }
    )


class CloseDelimiterWatch:
    """Wraps the request body stream and notes whether the multipart close delimiter passed."""

    def __init__(self, stream: Any, boundary: bytes) -> None:
        self._stream = stream
        self._needle = b"--" + boundary + b"--"
        self._tail = b""
        self.seen = False

    @classmethod
    def install(cls, request: HttpRequest) -> CloseDelimiterWatch | None:
        boundary = request.content_params.get("boundary", "") if request.content_params else ""
        if not boundary:
            return None  # Django's parser refuses a missing boundary itself.
        watch = cls(request._stream, boundary.encode("ascii", "replace"))
        request._stream = watch
        return watch

    def read(self, *args: Any) -> bytes:
        return self._scan(self._stream.read(*args))

    def readline(self, *args: Any) -> bytes:
        return self._scan(self._stream.readline(*args))

    def _scan(self, chunk: bytes) -> bytes:
        if not self.seen and chunk:
            # Keep a tail, so a delimiter split across two reads is still found; join only the
            # tail and the chunk's start, never the whole chunk (a copy of every byte).
            keep = len(self._needle) - 1
            self.seen = self._needle in self._tail + chunk[:keep] or self._needle in chunk
            self._tail = (self._tail + chunk)[-keep:] if len(chunk) < keep else chunk[-keep:]
        return chunk


def _pending_json(row: PendingUpload) -> dict[str, object]:
    return {
        "file_id": str(row.file_id),
        "name": row.filename,
        "mimeType": row.mimetype,
        "size": row.size_bytes,
        "created_at": row.created_at.isoformat(),
        "fetched_at": row.fetched_at.isoformat() if row.fetched_at else None,
        "expires_at": row.expires_at.isoformat(),
        "uri": row.uri,
    }


@api_view("GET")
@workspace_auth
def pending_list(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    limit = query_limit(request)
    after = None
    if request.GET.get("after"):
        # Keyset paging: the file_id of the last row of the previous page. A row that is acked
        # since still anchors the page; one that is swept (or foreign) cannot, so start again.
        after = PendingUpload.objects.page_key(
            workspace.id, parse_uuid(request.GET["after"], "after")
        )
        if after is None:
            raise ApiError(410, "after names no pending upload of this workspace; omit it")
    rows = PendingUpload.objects.list_for_workspace(workspace.id, after=after, limit=limit)
    return ApiResponse([_pending_json(row) for row in rows])


@api_view("GET")
@workspace_auth
def content(request: HttpRequest, workspace: Workspace, file_id: str) -> HttpResponseBase:
    # Unexpired rows are served acked or not, until the sweep deletes them (upstream's canvas
    # re-reads acked files for its previews). Every successful fetch stamps fetched_at.
    opened = open_content(parse_uuid(file_id, "file_id"), workspace_id=workspace.id)
    if opened is None:
        raise ApiError(404, "no such pending upload")
    PendingUpload.objects.mark_fetched(workspace.id, opened.row.file_id)
    return attachment_response(opened)


def open_content(file_id: Any, *, workspace_id: Any) -> OpenedContent | None:
    """open_chunks, with the bucket's failures decided before any header is sent.

    A row whose object is gone answers 404: the bytes will not come back, and the runtime's
    inbox treats 404 as a file to skip, not to retry. A bucket that cannot be reached answers
    503 with Retry-After: the file is there, the next poll gets it.
    """
    try:
        return PendingUpload.objects.open_chunks(file_id, workspace_id=workspace_id)
    except ObjectMissing as exc:
        logger.error(
            "pending upload %s: its object %s is missing from the bucket", file_id, exc.key
        )
        raise ApiError(404, "the stored bytes of this pending upload are missing") from None
    except StorageUnavailable as exc:
        logger.warning("pending upload %s: object storage unavailable: %s", file_id, exc)
        raise ApiError(
            503,
            "object storage unavailable, retry later",
            headers={"Retry-After": STORAGE_RETRY_AFTER},
        ) from None


def attachment_response(opened: OpenedContent) -> StreamingHttpResponse:
    """The stored bytes as a download that no browser will render in our origin.

    The body streams chunk by chunk after the view returns; if the row is swept meanwhile it
    ends short of Content-Length, which every HTTP client reports as a failed download.
    """
    row = opened.row
    response = StreamingHttpResponse(opened.chunks, content_type=row.mimetype or FALLBACK_MIMETYPE)
    # RFC 6266: an ASCII fallback in the quoted form (the sanitized name holds no quote or
    # backslash), and the exact UTF-8 name in filename*, which current clients prefer.
    fallback = "".join(char if char.isascii() else "_" for char in row.filename)
    encoded = quote(row.filename, safe="")
    response["Content-Disposition"] = (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    )
    response["Content-Length"] = str(opened.length)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = ATTACHMENT_CSP
    response["Cache-Control"] = "private, no-store"
    return response


@api_view("POST")
@workspace_auth
def ack(request: HttpRequest, workspace: Workspace, file_id: str) -> HttpResponse:
    outcome = PendingUpload.objects.ack(workspace.id, parse_uuid(file_id, "file_id"))
    if outcome is AckOutcome.ABSENT:
        raise ApiError(404, "no such pending upload")
    if outcome is AckOutcome.RACED:
        # The workspace has the bytes; the sweep deleting them first is not its error.
        return ApiResponse({"acked": True, "raced": True})
    return ApiResponse({"acked": True})
