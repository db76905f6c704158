"""Admin logins are throttled by django-axes, per username and client address."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from molecule.http.auth import client_address

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "correct horse battery staple"
LIMIT = settings.AXES_FAILURE_LIMIT
NGINX = "127.0.0.1"

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    return django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)


def login(username: str, password: str, address: str = "203.0.113.7", **meta: str) -> int:
    """One login through the shipped nginx (it appends the client's address); the status."""
    client = Client(REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR=address, **meta)
    response = client.post(LOGIN, {"username": username, "password": password})
    if response.status_code == 302:
        # Logged in: the admin index opens for this session.
        assert client.get("/admin/").status_code == 200
    return response.status_code


def fail(times: int, username: str = "root", address: str = "203.0.113.7") -> None:
    for _ in range(times):
        # A wrong password redraws the form (200); the one that reaches the limit is refused.
        assert login(username, "wrong", address) in (200, 429)


def test_the_settings_lock_out_per_username_and_address_after_a_few_failures() -> None:
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert 3 <= LIMIT <= 10
    assert timedelta(minutes=5) <= settings.AXES_COOLOFF_TIME <= timedelta(hours=1)


def test_wrong_passwords_lock_the_right_one_out(admin_user) -> None:
    assert login("root", "wrong") == 200

    fail(LIMIT - 1)

    assert login("root", PASSWORD) == 429
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == ("root", "203.0.113.7")
    assert attempt.failures_since_start >= LIMIT


def test_fewer_failures_than_the_limit_still_log_in_and_reset_the_count(admin_user) -> None:
    fail(LIMIT - 1)

    assert login("root", PASSWORD) == 302
    fail(LIMIT - 1)
    assert login("root", PASSWORD) == 302


def test_another_user_and_another_address_are_not_locked_out(admin_user) -> None:
    fail(LIMIT)

    assert login("boss", PASSWORD) == 302
    assert login("root", PASSWORD, address="198.51.100.9") == 302
    assert login("root", PASSWORD) == 429


def test_a_forged_forwarded_for_does_not_change_the_address(admin_user) -> None:
    # nginx appends the address it saw; what the client put before it is not believed.
    for forged in range(LIMIT):
        assert login("root", "wrong", address=f"10.0.0.{forged}, 203.0.113.7") in (200, 429)

    assert login("root", PASSWORD, address="10.9.9.9, 203.0.113.7") == 429


def test_the_lockout_ends_after_the_cool_off(admin_user) -> None:
    fail(LIMIT)
    assert login("root", PASSWORD) == 429

    AccessAttempt.objects.update(
        attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )

    assert login("root", PASSWORD) == 302


@override_settings(AXES_COOLOFF_TIME=timedelta(days=1))
def test_an_operator_resets_lockouts_with_axes_reset(admin_user) -> None:
    fail(LIMIT)
    assert login("root", PASSWORD) == 429

    out = StringIO()
    call_command("axes_reset", stdout=out)

    assert "1 attempts removed" in out.getvalue()
    assert login("root", PASSWORD) == 302


def test_lockouts_are_listed_in_the_admin(admin_user, admin_client: Client) -> None:
    fail(LIMIT, address="192.0.2.44")

    page = admin_client.get("/admin/axes/accessattempt/")

    assert page.status_code == 200
    assert b"192.0.2.44" in page.content


ADDRESSES = {
    "direct peer, no header": ("198.51.100.1", None, "198.51.100.1"),
    "direct peer forging the header": ("198.51.100.1", "127.0.0.1", "198.51.100.1"),
    "nginx, one hop": (NGINX, "203.0.113.7", "203.0.113.7"),
    "nginx, client-sent entries first": (NGINX, "1.1.1.1, 2.2.2.2,203.0.113.7", "203.0.113.7"),
    "nginx over IPv6": ("::1", "2001:db8::1", "2001:db8::1"),
    "nginx, garbage header": (NGINX, "not-an-address", NGINX),
    "nginx, no header": (NGINX, None, NGINX),
}


@pytest.mark.parametrize(("peer", "forwarded", "expected"), ADDRESSES.values(), ids=ADDRESSES)
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    meta = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded

    assert client_address(RequestFactory().get("/", **meta)) == expected


@override_settings(TRUSTED_PROXIES=("10.0.0.2",))
def test_trusted_proxies_name_the_proxy() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR=NGINX, HTTP_X_FORWARDED_FOR="203.0.113.7")
    behind = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert (client_address(request), client_address(behind)) == (NGINX, "203.0.113.7")
