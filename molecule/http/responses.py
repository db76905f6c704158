"""Every JSON answer: Go-compatible compact JSON, ApiError, and the view decorator."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

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
