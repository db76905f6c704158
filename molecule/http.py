"""JSON API plumbing for every endpoint: compact JSON, errors, body parsing and bearer auth."""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from molecule import conf
from molecule.models import Workspace
from molecule.quotas import QuotaExceeded

View = Callable[..., HttpResponse]

# Go's encoding/json escapes these inside strings by default (HTML safety, and the two line
# separators that break JavaScript). They can only occur inside strings, so replacing them in
# the encoded text is exact.
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_TABLE = str.maketrans(_GO_ESCAPES)


class GoJSONEncoder(DjangoJSONEncoder):
    """Encode as Go's encoding/json does: compact, UTF-8, and ``<>&`` U+2028 U+2029 escaped."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["separators"] = (",", ":")
        kwargs["ensure_ascii"] = False
        super().__init__(**kwargs)

    def encode(self, o: Any) -> str:
        return super().encode(o).translate(_GO_ESCAPE_TABLE)


class ApiResponse(JsonResponse):
    """Every JSON answer of the service: compact, the way the upstream clients grep for it."""

    def __init__(self, data: Any, status: int = 200, **kwargs: Any) -> None:
        super().__init__(data, encoder=GoJSONEncoder, safe=False, status=status, **kwargs)


class ApiError(Exception):
    """An expected client error, answered as ``{"error": message, **extra}``, with ``headers``."""

    def __init__(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra


# RFC 6750: a 401 names the scheme it wants. Every 401 of the service carries it.
BEARER_CHALLENGE = 'Bearer realm="molecule"'


def json_error(status: int, message: str, **extra: Any) -> ApiResponse:
    response = ApiResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = BEARER_CHALLENGE
    return response


def api_view(*methods: str) -> Callable[[View], View]:
    """Make a CSRF-exempt JSON endpoint that allows ``methods`` and answers ApiError as JSON."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = json_error(405, f"method {request.method} not allowed")
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                response = json_error(exc.status, exc.message, **exc.extra)
                for header, value in exc.headers.items():
                    response[header] = value
                return response

        return wrapper

    return decorate


def quota_refused(exc: QuotaExceeded) -> ApiError:
    """429 naming the quota and its limit, with Retry-After: the answer to every QuotaExceeded."""
    return ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)}, **exc.details())


def declared_length(request: HttpRequest) -> int | None:
    """The request's Content-Length (None when absent: a chunked body); 400 when it is not a
    number."""
    raw = request.META.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "invalid Content-Length") from None


def parse_uuid(value: Any, what: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ApiError(400, f"{what} must be a UUID")


def bearer_token(request: HttpRequest) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def client_address(request: HttpRequest) -> str:
    """The client's IP address: REMOTE_ADDR, or the proxy's word for it when the peer is one.

    Only a peer in TRUSTED_PROXIES (the shipped nginx on loopback) is believed, and only the
    last X-Forwarded-For entry: nginx appends the address it saw ($proxy_add_x_forwarded_for),
    so every entry before it came from the client and can be forged. django-axes locks admin
    logins out by this address (AXES_CLIENT_IP_CALLABLE).
    """
    peer = request.META.get("REMOTE_ADDR", "")
    if peer not in conf.trusted_proxies():
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(forwarded))
    except ValueError:
        return peer


def json_object(request: HttpRequest) -> dict[str, Any]:
    """Return the request's JSON object body, or raise ApiError 400/413/415."""
    try:
        raw = request.body
    except RequestDataTooBig:
        raise ApiError(413, "request body too large") from None
    content_type = request.content_type or ""
    if raw and content_type not in ("application/json", "") and not content_type.endswith("+json"):
        raise ApiError(415, "request body must be application/json")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the parser's stack, e.g. 100,000 brackets.
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    if not _storable(body):
        raise ApiError(400, "request body holds NUL, lone surrogates, NaN or Infinity")
    return body


def _storable(value: Any) -> bool:
    """True when PostgreSQL can hold every string and number in ``value`` (text and jsonb)."""
    # Iterative: the parser already accepted nesting as deep as the interpreter's stack.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or _has_surrogate(item):
                return False
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_MISSING = object()
# Pass as ``default`` to make a field required.
REQUIRED: Any = _MISSING


def json_field(
    body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = _MISSING
) -> Any:
    """Return ``body[name]`` checked against ``kind``; a missing field without default is 400."""
    value = body.get(name, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise ApiError(400, f"{name} is required")
        return default
    # bool is an int in Python, but never a valid count or id here.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ApiError(400, f"{name} has the wrong type")
    return value


_DIGITS = re.compile(r"[0-9]+")
# Larger than any cap; longer digit strings are clamped rather than parsed.
_HUGE = 10**18


def query_positive_int(request: HttpRequest, name: str) -> int | None:
    """``?name=`` as a positive integer (None when absent); anything else is 400.

    Values too long to matter come back as 10**18, for the caller to clamp.
    """
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    # ASCII digits only: int() would also take " 5", "+5", "5_0" and Arabic-Indic digits.
    if not _DIGITS.fullmatch(raw) or not raw.strip("0"):
        raise ApiError(400, f"{name} must be a positive integer")
    return _HUGE if len(raw.lstrip("0")) > 18 else int(raw)


# RFC 3339 as Go's time.RFC3339 parses it: a 'T', seconds, an optional fraction, and a zone.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def query_timestamp(request: HttpRequest, name: str) -> datetime | None:
    """``?name=`` as an RFC 3339 timestamp (None when absent or empty); anything else is 400."""
    raw = request.GET.get(name)
    if not raw:
        return None
    try:
        if not _RFC3339.fullmatch(raw):
            raise ValueError(raw)
        return datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an RFC3339 timestamp (e.g. 2026-05-01T00:00:00Z)"
        ) from None


def query_uuid(request: HttpRequest, name: str) -> uuid.UUID | None:
    """``?name=`` as a UUID (None when absent or empty); anything else is 400."""
    raw = request.GET.get(name)
    return parse_uuid(raw, name) if raw else None


# A page's rows: upstream's default and cap.
LIMIT_DEFAULT = 100
LIMIT_MAX = 500


def query_limit(request: HttpRequest, *, default: int = LIMIT_DEFAULT) -> int:
    """``?limit=``: ``default`` when absent, clamped to LIMIT_MAX, 400 unless an integer >= 1."""
    value = query_positive_int(request, "limit")
    return default if value is None else min(value, LIMIT_MAX)


def workspace_credentials(request: HttpRequest, workspace_id: str) -> tuple[uuid.UUID, str]:
    """The workspace id from the URL and the request's bearer token: 400 for a malformed id,
    401 without a token. Check them with ``workspace_admit`` against what the database holds."""
    parsed_id = parse_uuid(workspace_id, "workspace id")
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "missing or malformed bearer token")
    return parsed_id, token


def workspace_admit(workspace: Workspace | None, token: str) -> Workspace:
    """``workspace`` (its credentials, as the database holds them) when ``token`` opens it;
    401 otherwise, the same for a wrong token, a removed workspace and an unknown id."""
    admitted = Workspace.objects.admit(workspace, token, admin_token=conf.admin_token())
    if admitted is None:
        raise ApiError(401, "invalid token for this workspace")
    return admitted


def workspace_auth(view: View) -> View:
    """Require ``Authorization: Bearer <token>`` of the workspace named in the URL.

    Passes the authenticated Workspace as ``workspace``. A malformed id is 400; a missing or
    wrong token, another workspace's token, a removed workspace's token, or an unknown id are
    all the same 401. ADMIN_TOKEN, when set, is accepted for every existing workspace.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, workspace_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
        workspace = workspace_authenticate(request, workspace_id)
        return view(request, *args, workspace=workspace, **kwargs)

    return wrapper


def workspace_authenticate(request: HttpRequest, workspace_id: str) -> Workspace:
    """The workspace ``workspace_id`` when the request's bearer token opens it; ApiError if not.

    From the headers alone: the request body is never read.
    """
    parsed_id, token = workspace_credentials(request, workspace_id)
    return workspace_admit(Workspace.objects.credentials(parsed_id), token)
