"""Who is calling: the bearer token, the workspace it opens, and the client's address."""

from __future__ import annotations

import functools
import ipaddress
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse

from molecule import conf
from molecule.http.bodies import parse_uuid
from molecule.http.responses import ApiError, View
from molecule.models import Workspace


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
