"""nginx's token check, GET /internal/auth: the same verdict as the route it stands in front of."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client, RequestFactory, override_settings

from molecule.models import Workspace
from molecule.views.internal import proxy_auth
from tests.helpers import RegisteredWorkspace
from tests.molecule.test_auth import ADMIN_TOKEN, CREDENTIALS, ROUTES, fill

pytestmark = pytest.mark.django_db


def check(original_uri: str, **headers: str) -> Any:
    return Client().get("/internal/auth", HTTP_X_ORIGINAL_URI=original_uri, **headers)


def assert_refused(response: Any, status: int, message: str) -> None:
    """401 to nginx, carrying the route's own ``status`` and ``message``, and no body."""
    assert response.status_code == 401
    assert response["X-Molecule-Status"] == str(status)
    assert response["X-Molecule-Error"] == message
    assert response.content == b""
    # nginx puts the message inside a JSON string as it is: it must need no escaping.
    assert json.dumps(message) == f'"{message}"'
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="molecule"'
    else:
        assert "WWW-Authenticate" not in response


# The shared poll workspace, named for its part here.
@pytest.fixture
def owner(poll_workspace: RegisteredWorkspace) -> RegisteredWorkspace:
    return poll_workspace


@pytest.mark.parametrize("credentials", list(CREDENTIALS))
@pytest.mark.parametrize("route", ROUTES)
def test_the_check_refuses_what_the_route_refuses_with_its_message(
    owner, other_workspace, route, credentials
):
    url = fill(route, owner.id)
    headers = CREDENTIALS[credentials](owner, other_workspace)
    # POST: every workspace route that takes a body serves it, and the rest answer 405 first.
    served = Client().post(url, **headers)
    if served.status_code == 405:
        served = Client().get(url, **headers)

    response = check(url, **headers)

    assert served.status_code == 401
    assert_refused(response, 401, served.json()["error"])


@pytest.mark.parametrize("route", ROUTES)
def test_the_check_admits_the_workspace_token_and_the_admin_token(owner, route):
    url = fill(route, owner.id)

    with override_settings(ADMIN_TOKEN=ADMIN_TOKEN):
        for token in (owner.token, ADMIN_TOKEN):
            response = check(f"{url}?limit=5", HTTP_AUTHORIZATION=f"Bearer {token}")
            assert response.status_code == 204, token
            assert response.content == b""


@pytest.mark.parametrize(
    ("original_uri", "status", "message"),
    [
        ("/workspaces/not-a-uuid/chat/uploads", 400, "workspace id must be a UUID"),
        ("/workspaces/{id}/no-such-route", 404, "not found"),
        ("/workspaces/", 404, "not found"),
        ("/uploads/limits", 404, "not found"),
        ("", 404, "not found"),
    ],
)
def test_the_check_answers_what_the_app_would_for_other_uris(owner, original_uri, status, message):
    uri = original_uri.format(id=owner.id)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {owner.token}"}

    assert_refused(check(uri, **auth), status, message)
    if uri.startswith("/workspaces/"):
        assert Client().post(uri, **auth).json() == {"error": message}


@pytest.mark.parametrize(
    "encoded",
    ["/workspaces/{dashed}/chat/uploads", "/workspaces/{id}%2Fchat/uploads?x=%2F"],
)
def test_the_check_reads_the_original_uri_decoded_as_gunicorn_does(owner, encoded):
    # gunicorn decodes the path for Django (nginx's locations see it decoded too), so an
    # encoded id or slash names the same route, and the query string names none.
    uri = encoded.format(id=owner.id, dashed=str(owner.id).replace("-", "%2d"))

    response = check(uri, HTTP_AUTHORIZATION=f"Bearer {owner.token}")

    assert response.status_code == 204


def test_the_check_refuses_a_removed_workspaces_token(owner):
    Workspace.objects.filter(pk=owner.id).update(status=Workspace.Status.REMOVED)

    response = check(owner.url("chat/uploads"), **owner.auth)

    assert_refused(response, 401, "invalid token for this workspace")


class UnreadableBody:
    def read(self, *args: object) -> bytes:
        raise AssertionError("the check read the request body")

    readline = read


@pytest.mark.parametrize("which", ["owner", "unknown"])
def test_the_check_never_reads_a_body(owner, which):
    workspace_id = owner.id if which == "owner" else uuid.uuid4()
    request = RequestFactory().get(
        "/internal/auth",
        HTTP_X_ORIGINAL_URI=f"/workspaces/{workspace_id}/chat/uploads",
        HTTP_AUTHORIZATION=f"Bearer {owner.token}",
        CONTENT_LENGTH=str(100 * 1024 * 1024),
    )
    request._stream = UnreadableBody()

    response = proxy_auth(request)

    assert response.status_code == (204 if which == "owner" else 401)


def test_the_check_serves_only_get(owner):
    response = Client().post("/internal/auth", HTTP_X_ORIGINAL_URI=owner.url("chat/uploads"))

    assert response.status_code == 405
