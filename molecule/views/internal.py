"""Routes for the operator's machinery, not the agents: /metrics and nginx's token check."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from molecule.exposition import metrics_page
from molecule.http.auth import bearer_token, workspace_authenticate
from molecule.http.responses import BEARER_CHALLENGE, ApiError, api_view, json_error
from molecule.tokens import token_hash, token_matches


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
