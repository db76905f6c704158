"""Bearer auth on every /workspaces/<id>/ route, constant-time token checks and /metrics."""

from __future__ import annotations

import hmac
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
    # CLARIFICATIONS: an unknown id is 401 like a wrong token, never 404, whatever the token.
    api = Client(enforce_csrf_checks=True)
    url = fill(route, uuid.uuid4())

    for headers in ({}, owner.auth):
        served, _ = _allowed_and_refused(api, url, headers)
        assert served
        for method in served:
            response = api.generic(method, url, **headers)
            assert response.status_code == 401, (method, response.content)
            assert isinstance(response.json()["error"], str)


@pytest.mark.django_db
@pytest.mark.parametrize("route", ROUTES)
def test_every_workspace_route_admits_its_own_token(owner, route):
    # The control for the table above: the same request with the right token is not a 401.
    api = Client(enforce_csrf_checks=True)
    url = fill(route, owner.id)

    served, _ = _allowed_and_refused(api, url, owner.auth)

    assert served
    for method in served:
        response = api.generic(method, url, **owner.auth)
        assert response.status_code != 401, (method, response.content)
        assert response.status_code < 500


# --- Constant-time comparison -----------------------------------------------------------------


class CompareSpy:
    """Records hmac.compare_digest calls; ``answer`` overrides its result when set."""

    def __init__(self, real: Callable[[str, str], bool], answer: bool | None = None) -> None:
        self.real = real
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, a: str, b: str) -> bool:
        self.calls.append((a, b))
        result = self.real(a, b)
        return result if self.answer is None else self.answer


def test_token_matches_compares_with_hmac_compare_digest(monkeypatch):
    spy = CompareSpy(hmac.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    token = token_generate()

    assert token_matches(token, token_hash(token)) is True
    assert token_matches(token + "x", token_hash(token)) is False
    assert token_matches(token, None) is False

    assert spy.calls[0] == (token_hash(token), token_hash(token))
    assert spy.calls[1] == (token_hash(token + "x"), token_hash(token))
    assert len(spy.calls) == 3


def test_the_answer_comes_from_compare_digest(monkeypatch):
    # If token_matches also compared with ==, forcing compare_digest's answer would not flip it.
    monkeypatch.setattr(hmac, "compare_digest", CompareSpy(hmac.compare_digest, answer=True))
    assert token_matches("wrong", token_hash("right")) is True
    monkeypatch.setattr(hmac, "compare_digest", CompareSpy(hmac.compare_digest, answer=False))
    assert token_matches("right", token_hash("right")) is False


@pytest.mark.django_db
def test_an_unknown_workspace_still_costs_a_comparison(monkeypatch, owner):
    spy = CompareSpy(hmac.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", spy)

    assert Workspace.objects.authenticate(uuid.uuid4(), owner.token) is None
    assert Workspace.objects.authenticate(owner.id, owner.token) == owner.workspace

    # Both paths compare twice (own token, then the admin tier against a dummy when disabled),
    # so timing does not reveal which ids exist or whether ADMIN_TOKEN is set.
    assert len(spy.calls) == 4


@pytest.mark.django_db
def test_api_requests_compare_tokens_in_constant_time(monkeypatch, owner):
    spy = CompareSpy(hmac.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", spy)
    api = Client()

    response = api.get(owner.url("pending-uploads"), HTTP_AUTHORIZATION="Bearer wrong")

    assert response.status_code == 401
    assert spy.calls == [
        (token_hash("wrong"), owner.workspace.token_hash),
        (token_hash("wrong"), "0" * 64),
    ]


@pytest.mark.django_db
@override_settings(ADMIN_TOKEN="operator-secret")
def test_the_admin_token_is_compared_in_constant_time(monkeypatch, owner):
    spy = CompareSpy(hmac.compare_digest)
    monkeypatch.setattr(hmac, "compare_digest", spy)

    response = Client().get(owner.url("pending-uploads"), HTTP_AUTHORIZATION="Bearer wrong")

    assert response.status_code == 401
    assert spy.calls[1] == (token_hash("wrong"), token_hash("operator-secret"))


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
    api = Client(enforce_csrf_checks=True)
    url = fill(route, owner.id)

    served, _ = _allowed_and_refused(api, url, owner.auth)

    assert served
    for method in served:
        response = api.generic(method, url, **owner.auth)
        assert response.status_code == 401, (method, response.content)
        assert response["WWW-Authenticate"].startswith("Bearer")
