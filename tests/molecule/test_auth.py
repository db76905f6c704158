"""Bearer auth on every /workspaces/<id>/ route, constant-time token checks and /metrics."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterable

import pytest
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from molecule.models import Workspace
from molecule.tokens import token_generate, token_hash, token_matches
from tests.helpers import RegisteredWorkspace, run_sql

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PARAMETER = re.compile(r"<(?:\w+:)?\w+>")


def _walk(patterns: Iterable[URLPattern | URLResolver], prefix: str = "") -> Iterable[str]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        else:
            yield route


def workspace_routes() -> list[str]:
    """Every route under workspaces/, read from the URLconf so a new route joins the table."""
    return sorted(
        route for route in _walk(get_resolver().url_patterns) if route.startswith("workspaces/")
    )


ROUTES = workspace_routes()


def fill(route: str, workspace_id: uuid.UUID) -> str:
    """The route as a URL: the workspace id first, a valid UUID for every other parameter."""
    first, *rest = PARAMETER.findall(route)
    assert first == "<str:workspace_id>", route
    url = route.replace(first, str(workspace_id), 1)
    for parameter in rest:
        url = url.replace(parameter, str(uuid.uuid4()), 1)
    return "/" + url


def test_the_route_table_is_not_empty():
    # Guards the walk itself: these routes exist today, so the table must contain them.
    assert {
        "workspaces/<str:workspace_id>/activity",
        "workspaces/<str:workspace_id>/chat/uploads",
        "workspaces/<str:workspace_id>/pending-uploads",
        "workspaces/<str:workspace_id>/pending-uploads/<str:file_id>/content",
        "workspaces/<str:workspace_id>/pending-uploads/<str:file_id>/ack",
    } <= set(ROUTES)


@pytest.fixture
def owner(register) -> RegisteredWorkspace:
    return register("owner", "poll")


@pytest.fixture
def intruder(register) -> RegisteredWorkspace:
    return register("intruder", "poll")


def _missing(owner: RegisteredWorkspace, intruder: RegisteredWorkspace) -> dict[str, str]:
    return {}


CREDENTIALS: dict[str, Callable[[RegisteredWorkspace, RegisteredWorkspace], dict[str, str]]] = {
    "missing": _missing,
    "token-scheme": lambda owner, intruder: {"HTTP_AUTHORIZATION": "Token x"},
    "token-scheme-with-real-token": lambda owner, intruder: {
        "HTTP_AUTHORIZATION": f"Token {owner.token}"
    },
    "bearer-alone": lambda owner, intruder: {"HTTP_AUTHORIZATION": "Bearer"},
    "bearer-space": lambda owner, intruder: {"HTTP_AUTHORIZATION": "Bearer "},
    "basic": lambda owner, intruder: {"HTTP_AUTHORIZATION": "Basic b3duZXI6cGFzcw=="},
    "real-token-without-scheme": lambda owner, intruder: {"HTTP_AUTHORIZATION": owner.token},
    "real-token-with-suffix": lambda owner, intruder: {
        "HTTP_AUTHORIZATION": f"Bearer {owner.token}x"
    },
    "real-token-truncated": lambda owner, intruder: {
        "HTTP_AUTHORIZATION": f"Bearer {owner.token[:-1]}"
    },
    "invalid": lambda owner, intruder: {
        "HTTP_AUTHORIZATION": f"Bearer {secrets.token_urlsafe(32)}"
    },
    "stored-hash-as-token": lambda owner, intruder: {
        "HTTP_AUTHORIZATION": f"Bearer {owner.workspace.token_hash}"
    },
    "another-workspace": lambda owner, intruder: intruder.auth,
    # ADMIN_TOKEN is unset in these tests: no string is an operator token then.
    "admin-tier-disabled": lambda owner, intruder: {"HTTP_AUTHORIZATION": "Bearer "},
}

ADMIN_TOKEN = "operator-" + "s" * 40


def _allowed_and_refused(
    api: Client, url: str, headers: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Send every method; return the methods the route serves and those it refuses with 405."""
    served, refused = [], []
    for method in METHODS:
        response = api.generic(method, url, **headers)
        if response.status_code == 405:
            assert response["Content-Type"] == "application/json"
            refused.append(method)
        else:
            served.append(method)
    return served, refused


@pytest.mark.django_db
@pytest.mark.parametrize("credentials", list(CREDENTIALS))
@pytest.mark.parametrize("route", ROUTES)
def test_every_workspace_route_refuses_bad_credentials(owner, intruder, route, credentials):
    api = Client(enforce_csrf_checks=True)
    url = fill(route, owner.id)
    headers = CREDENTIALS[credentials](owner, intruder)
    before = run_sql(
        "SELECT (SELECT count(*) FROM pending_uploads), (SELECT count(*) FROM activity_logs)"
    )

    served = []
    for method in METHODS:
        response = api.generic(method, url, **headers)
        if response.status_code == 405:
            continue
        served.append(method)
        assert response.status_code == 401, (method, response.content)
        assert response["Content-Type"] == "application/json"
        assert response["WWW-Authenticate"] == 'Bearer realm="molecule"'
        assert isinstance(response.json()["error"], str)

    assert served, f"{route} serves no method"
    assert (
        run_sql(
            "SELECT (SELECT count(*) FROM pending_uploads), (SELECT count(*) FROM activity_logs)"
        )
        == before
    )


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES)
def test_every_workspace_route_is_401_for_an_unknown_workspace(owner, route):
    # An unknown id is 401 like a wrong token, never 404, whatever the token: a 404 would tell
    # a prober which workspace ids exist.
    api = Client(enforce_csrf_checks=True)
    url = fill(route, uuid.uuid4())

    for headers in ({}, owner.auth):
        served, _ = _allowed_and_refused(api, url, headers)
        assert served
        for method in served:
            response = api.generic(method, url, **headers)
            assert response.status_code == 401, (method, response.content)
            assert isinstance(response.json()["error"], str)


def served_responses(route: str, owner: RegisteredWorkspace) -> list[tuple[str, object]]:
    """Each method the route serves, with its answer to a request carrying the owner's token."""
    api = Client(enforce_csrf_checks=True)
    url = fill(route, owner.id)
    served, _ = _allowed_and_refused(api, url, owner.auth)
    assert served
    return [(method, api.generic(method, url, **owner.auth)) for method in served]


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES)
def test_every_workspace_route_admits_its_own_token(owner, route):
    # The control for the table above: the same request with the right token is not a 401.
    for method, response in served_responses(route, owner):
        assert response.status_code != 401, (method, response.content)
        assert response.status_code < 500


# --- Token checks: a wrong token is refused however close it is -------------------------------


def same_length_wrong(token: str) -> str:
    """A token that differs only in its last character: as long as the right one."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def test_token_matches_only_its_own_token():
    token = token_generate()
    stored = token_hash(token)

    assert token_matches(token, stored) is True
    assert token_matches(same_length_wrong(token), stored) is False
    assert token_matches(token + "x", stored) is False
    assert token_matches(token[:-1], stored) is False
    assert token_matches("", stored) is False
    # No stored hash (a workspace without a token) matches nothing, not even an empty token.
    assert token_matches(token, None) is False
    assert token_matches("", None) is False


@pytest.mark.django_db
def test_authenticate_refuses_a_same_length_token_and_an_unknown_workspace(owner):
    wrong = same_length_wrong(owner.token)

    assert Workspace.objects.authenticate(owner.id, owner.token) == owner.workspace
    assert Workspace.objects.authenticate(owner.id, wrong) is None
    assert Workspace.objects.authenticate(uuid.uuid4(), owner.token) is None


@pytest.mark.django_db
@override_settings(ADMIN_TOKEN="operator-secret")
def test_api_refuses_same_length_workspace_and_admin_tokens(owner):
    api = Client()

    for wrong in (same_length_wrong(owner.token), same_length_wrong("operator-secret")):
        response = api.get(owner.url("pending-uploads"), HTTP_AUTHORIZATION=f"Bearer {wrong}")
        assert response.status_code == 401, wrong
    admitted = api.get(owner.url("pending-uploads"), HTTP_AUTHORIZATION="Bearer operator-secret")
    assert admitted.status_code == 200


def test_tokens_carry_at_least_256_bits():
    tokens = {token_generate() for _ in range(200)}

    assert len(tokens) == 200
    for token in tokens:
        assert len(token) >= 43
        assert re.fullmatch(r"[A-Za-z0-9_-]+", token)


# --- /metrics ---------------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="scrape-secret")
@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer wrong",
        "Bearer",
        "Token scrape-secret",
        "scrape-secret",
        "Bearer scrape-secretx",
    ],
)
def test_metrics_with_a_token_refuses_other_credentials(header):
    headers = {} if header is None else {"HTTP_AUTHORIZATION": header}

    response = Client().get("/metrics", **headers)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == 'Bearer realm="molecule"'
    assert b"# HELP" not in response.content


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="scrape-secret")
def test_metrics_with_a_token_admits_it():
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")

    assert response.status_code == 200
    assert b"# HELP molecule_pending_uploads_swept_total" in response.content


@pytest.mark.django_db
@override_settings(METRICS_TOKEN="")
def test_metrics_without_a_token_setting_are_open():
    response = Client().get("/metrics")

    assert response.status_code == 200
    assert b"# TYPE molecule_pending_uploads_swept_total counter" in response.content


# --- ADMIN_TOKEN and removed workspaces -------------------------------------------------------


@pytest.mark.django_db
@override_settings(ADMIN_TOKEN=ADMIN_TOKEN)
@pytest.mark.parametrize("route", ROUTES)
def test_every_workspace_route_admits_the_admin_token(owner, route):
    api = Client(enforce_csrf_checks=True)
    admin = {"HTTP_AUTHORIZATION": f"Bearer {ADMIN_TOKEN}"}
    url = fill(route, owner.id)

    served, _ = _allowed_and_refused(api, url, admin)

    assert served
    for method in served:
        response = api.generic(method, url, **admin)
        assert response.status_code != 401, (method, response.content)
        assert response.status_code < 500
        # Unknown ids stay 401 for the operator too: the id space is not revealed.
        unknown = api.generic(method, fill(route, uuid.uuid4()), **admin)
        assert unknown.status_code == 401
        # A near miss is no operator token.
        near = api.generic(method, url, HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}x")
        assert near.status_code == 401


@pytest.mark.django_db
def test_the_admin_token_is_never_logged(caplog, owner):
    with override_settings(ADMIN_TOKEN=ADMIN_TOKEN), caplog.at_level("DEBUG"):
        for route in ROUTES:
            Client().get(fill(route, owner.id), HTTP_AUTHORIZATION=f"Bearer {ADMIN_TOKEN}")

    assert ADMIN_TOKEN not in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES)
def test_a_removed_workspaces_token_is_401_on_every_route(owner, route):
    Workspace.objects.filter(pk=owner.id).update(status=Workspace.Status.REMOVED)
    for method, response in served_responses(route, owner):
        assert response.status_code == 401, (method, response.content)
        assert response["WWW-Authenticate"].startswith("Bearer")
