"""Registration of push-mode workspaces: the URL rules, and the platform_inbound_secret in the
register and heartbeat answers, sealed at rest and rotated with SECRET_KEY."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.test import Client, override_settings

from molecule.models import Workspace
from molecule.sealing import unseal
from molecule.services.inbound_secrets import inbound_secret_ensure
from tests.helpers import assert_json_error, run_sql
from tests.molecule.test_api import bearer, post_json

pytestmark = pytest.mark.django_db

SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
OLD_KEY = "old-secret-key-" + "o" * 40
NEW_KEY = "new-secret-key-" + "n" * 40
OTHER_KEY = "other-secret-key-" + "x" * 40
# A literal public address: registration checks it without a lookup or a connection.
PUBLIC_URL = "https://93.184.215.14/agent"


def push_body(workspace_id: uuid.UUID | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(workspace_id or uuid.uuid4()),
        "delivery_mode": "push",
        "agent_card": {"name": "pusher"},
        **fields,
    }


def register(api: Client, body: dict[str, Any], **extra: Any) -> Any:
    return post_json(api, "/registry/register", body, **extra)


def heartbeat(api: Client, workspace_id: str, token: str) -> Any:
    body = {"workspace_id": workspace_id, "active_tasks": 0}
    return post_json(api, "/registry/heartbeat", body, **bearer(token))


def stored_sealed(workspace_id: str) -> str | None:
    """The raw column, read with plain SQL."""
    rows = run_sql(
        "SELECT platform_inbound_secret_sealed FROM workspaces WHERE id = %s", [workspace_id]
    )
    return rows[0][0]


# --- the URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        push_body(),
        push_body(url=None),
        # Push is the default mode, as upstream's.
        {"id": str(uuid.uuid4()), "agent_card": {"name": "pusher"}},
        push_body(agent_card={"name": "pusher", "url": None}),
    ],
    ids=["absent", "null", "default-mode", "card-url-null"],
)
def test_push_mode_without_a_url_is_400(api, body) -> None:
    response = register(api, body)

    assert response.status_code == 400
    assert response.json() == {"error": "url is required for push-mode workspaces"}
    assert Workspace.objects.count() == 0


def test_the_agent_card_url_stands_in_for_a_missing_url(api) -> None:
    body = push_body(agent_card={"name": "pusher", "url": PUBLIC_URL})

    response = register(api, body)

    assert response.status_code == 200, response.content
    assert Workspace.objects.get(pk=body["id"]).url == PUBLIC_URL


def test_url_wins_over_the_agent_card_url(api) -> None:
    body = push_body(url=PUBLIC_URL, agent_card={"url": "http://169.254.169.254/"})

    response = register(api, body)

    assert response.status_code == 200, response.content
    assert Workspace.objects.get(pk=body["id"]).url == PUBLIC_URL


# (url, the error outside development and SaaS); names resolve through the resolver fixture.
REFUSED_URLS = {
    "loopback": ("http://127.0.0.1:8000", "url targets a blocked address: loopback"),
    "loopback-v6": ("http://[::1]:8000/", "url targets a blocked address: loopback"),
    "metadata": (
        "http://169.254.169.254/latest/meta-data",
        "url targets a blocked address: link-local",
    ),
    "mapped-metadata": (
        "http://[::ffff:169.254.169.254]/",
        "url targets a blocked address: link-local",
    ),
    "private": ("https://10.1.2.3/", "url targets a blocked address: private (RFC 1918)"),
    "unspecified": ("http://0.0.0.0:8000/", "url targets a blocked address: unspecified"),
    "test-net": (
        "https://203.0.113.7/",
        "url targets a blocked address: documentation (TEST-NET-3)",
    ),
    "name-to-private": (
        "https://internal.test/",
        "url host 'internal.test' resolves to a blocked address: private (RFC 1918) (10.0.0.8)",
    ),
    "unresolvable": (
        "https://nowhere.test/",
        "url host 'nowhere.test' does not resolve: [Errno -2] Name or service not known",
    ),
    "scheme": ("ftp://93.184.215.14/", "url must be an http(s) URL of at most 2048 characters"),
    "card-scheme": (
        None,
        "agent_card.url must be an http(s) URL of at most 2048 characters",
    ),
    "userinfo": (
        "http://93.184.215.14@169.254.169.254/",
        "url must not carry a user name or password",
    ),
}


@pytest.mark.parametrize(("url", "error"), REFUSED_URLS.values(), ids=REFUSED_URLS.keys())
def test_a_push_url_the_guard_refuses_is_400(api, resolver, url, error) -> None:
    resolver["internal.test"] = [["10.0.0.8"]]
    card_url = "gopher://93.184.215.14/" if url is None else None
    body = push_body(url=url, agent_card={"name": "pusher", "url": card_url})

    response = register(api, body)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    assert Workspace.objects.count() == 0


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({"MOLECULE_ENV": "development"}, "http://127.0.0.1:8000"),
        ({"MOLECULE_ENV": "dev"}, "http://internal.test:8000"),
        ({"MOLECULE_DEPLOY_MODE": "saas"}, "https://10.1.2.3/"),
        ({"MOLECULE_ORG_ID": "org-1"}, "https://[fd00::5]/"),
    ],
    ids=["development-loopback", "development-private", "saas", "org-id"],
)
def test_the_switches_allow_what_they_name(api, resolver, settings, url) -> None:
    resolver["internal.test"] = [["192.168.7.7"]]
    body = push_body(url=url)

    with override_settings(**settings):
        response = register(api, body)

    assert response.status_code == 200, response.content
    assert Workspace.objects.get(pk=body["id"]).url == url


def test_a_poll_url_is_stored_without_the_guard(api) -> None:
    body = push_body(delivery_mode="poll", url="http://127.0.0.1:9")

    response = register(api, body)

    assert response.status_code == 200, response.content
    assert Workspace.objects.get(pk=body["id"]).url == "http://127.0.0.1:9"


def test_a_stranger_gets_401_before_any_url_rule(api, poll_workspace) -> None:
    response = register(api, push_body(poll_workspace.id), **bearer("not-the-token"))

    assert_json_error(response, 401)


def test_reregistration_switches_mode_and_url_both_ways(api) -> None:
    body = push_body(url=PUBLIC_URL)
    first = register(api, body).json()
    token = first["auth_token"]

    to_poll = register(api, {**body, "delivery_mode": "poll", "url": None}, **bearer(token))
    polling = Workspace.objects.get(pk=body["id"])
    back = register(api, {**body, "url": "https://93.184.215.15/"}, **bearer(token))
    pushing = Workspace.objects.get(pk=body["id"])

    assert (to_poll.status_code, back.status_code) == (200, 200)
    assert (polling.delivery_mode, polling.url) == ("poll", None)
    assert (pushing.delivery_mode, pushing.url) == ("push", "https://93.184.215.15/")
    assert to_poll.json()["platform_inbound_secret"] == first["platform_inbound_secret"]
    assert back.json()["platform_inbound_secret"] == first["platform_inbound_secret"]


# --- the platform_inbound_secret --------------------------------------------------------------


def test_every_answer_carries_the_same_secret_and_no_store(api) -> None:
    body = push_body(url=PUBLIC_URL)

    first = register(api, body)
    token = first.json()["auth_token"]
    again = register(api, body, **bearer(token))
    beat = heartbeat(api, body["id"], token)

    secret = first.json()["platform_inbound_secret"]
    assert SECRET_SHAPE.fullmatch(secret)
    assert secret != token
    assert again.json()["platform_inbound_secret"] == secret
    assert beat.json() == {"status": "ok", "platform_inbound_secret": secret}
    for response in (first, again, beat):
        assert response["Cache-Control"] == "no-store"


def test_the_secret_is_sealed_at_rest(api) -> None:
    secrets = []
    for _ in range(3):
        body = push_body(url=PUBLIC_URL)
        secrets.append(register(api, body).json()["platform_inbound_secret"])
        raw = stored_sealed(body["id"])
        assert raw.startswith("gAAAAA")
        assert unseal(raw) == secrets[-1]

    rows = [text for (text,) in run_sql("SELECT w::text FROM workspaces AS w")]

    assert len(set(secrets)) == 3
    for secret in secrets:
        assert not any(secret in row for row in rows)


@pytest.mark.parametrize("broken", [None, "gAAAAA-not-a-token"], ids=["missing", "unreadable"])
def test_registration_mints_a_secret_when_none_is_usable(api, caplog, broken) -> None:
    body = push_body(url=PUBLIC_URL)
    first = register(api, body).json()
    Workspace.objects.filter(pk=body["id"]).update(platform_inbound_secret_sealed=broken)

    again = register(api, body, **bearer(first["auth_token"])).json()

    minted = again["platform_inbound_secret"]
    assert SECRET_SHAPE.fullmatch(minted)
    assert minted != first["platform_inbound_secret"]
    assert unseal(stored_sealed(body["id"])) == minted
    reason = "none was stored" if broken is None else "the stored one could not be opened"
    assert f"platform_inbound_secret minted for workspace {body['id']} ({reason})" in caplog.text
    assert minted not in caplog.text


def test_a_heartbeat_mints_one_too_and_keeps_it(api) -> None:
    body = push_body(url=PUBLIC_URL)
    token = register(api, body).json()["auth_token"]
    Workspace.objects.filter(pk=body["id"]).update(platform_inbound_secret_sealed=None)

    first = heartbeat(api, body["id"], token).json()["platform_inbound_secret"]
    second = heartbeat(api, body["id"], token).json()["platform_inbound_secret"]

    assert SECRET_SHAPE.fullmatch(first)
    assert second == first
    assert unseal(stored_sealed(body["id"])) == first


def test_a_rotated_secret_key_keeps_the_secret_through_the_fallbacks(api, caplog) -> None:
    body = push_body(url=PUBLIC_URL)
    with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
        first = register(api, body).json()
    secret, token = first["platform_inbound_secret"], first["auth_token"]
    sealed_with_old = stored_sealed(body["id"])

    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        beat = heartbeat(api, body["id"], token).json()
        # A heartbeat changes nothing at rest; a registration seals afresh with the new key.
        assert stored_sealed(body["id"]) == sealed_with_old
        again = register(api, body, **bearer(token)).json()
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        opened_with_new_alone = unseal(stored_sealed(body["id"]))

    assert beat["platform_inbound_secret"] == again["platform_inbound_secret"] == secret
    assert opened_with_new_alone == secret
    assert "minted" not in caplog.text


def test_a_key_change_without_fallback_mints_a_new_secret(api, caplog) -> None:
    body = push_body(url=PUBLIC_URL)
    with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
        first = register(api, body).json()

    with override_settings(SECRET_KEY=OTHER_KEY, SECRET_KEY_FALLBACKS=[]):
        again = register(api, body, **bearer(first["auth_token"])).json()

    assert again["platform_inbound_secret"] != first["platform_inbound_secret"]
    assert "opens with no key of SECRET_KEY or SECRET_KEY_FALLBACKS" in caplog.text
    assert "the stored one could not be opened" in caplog.text
    for secret in (first["platform_inbound_secret"], again["platform_inbound_secret"]):
        assert secret not in caplog.text


def test_a_removed_workspace_gets_no_secret(api) -> None:
    body = push_body(url=PUBLIC_URL)
    token = register(api, body).json()["auth_token"]
    Workspace.objects.filter(pk=body["id"]).update(status="removed")

    for response in (register(api, body, **bearer(token)), heartbeat(api, body["id"], token)):
        assert_json_error(response, 401)
        assert "platform_inbound_secret" not in response.json()


def test_of_two_mints_at_once_both_present_the_one_stored(api) -> None:
    body = push_body(url=PUBLIC_URL)
    register(api, body)
    Workspace.objects.filter(pk=body["id"]).update(platform_inbound_secret_sealed=None)
    # Two requests read the row before either stored a secret.
    first_reader, second_reader = (Workspace.objects.get(pk=body["id"]) for _ in range(2))

    stored = inbound_secret_ensure(first_reader)
    lost = inbound_secret_ensure(second_reader)

    assert lost == stored
    assert unseal(stored_sealed(body["id"])) == stored


def test_no_secret_is_minted_for_a_workspace_removed_meanwhile(api) -> None:
    body = push_body(url=PUBLIC_URL)
    register(api, body)
    Workspace.objects.filter(pk=body["id"]).update(platform_inbound_secret_sealed=None)
    # A heartbeat authenticated it, then an operator removed it.
    authenticated = Workspace.objects.get(pk=body["id"])
    Workspace.objects.filter(pk=body["id"]).update(status="removed")

    assert inbound_secret_ensure(authenticated) is None
    assert stored_sealed(body["id"]) is None
