"""JSON error pages: urls.py's handler400, 403, 404 and 500."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from molecule.http.responses import json_error


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(404, "not found")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(400, "bad request")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(403, "forbidden")


def server_error(request: HttpRequest) -> HttpResponse:
    return json_error(500, "internal error")
