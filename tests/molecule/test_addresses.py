"""The address guard: its decision table on literal addresses, its switches, and resolution
through names the tests control (a patched resolver); no traffic leaves the machine."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import pytest
from django.test import override_settings

from molecule.addresses import (
    AddressPolicy,
    AddressRefused,
    AddressUnresolved,
    address_refusal,
    connection_open,
    url_check,
    url_target,
)

STRICT = AddressPolicy()
SAAS = AddressPolicy(private=True)
DEVELOPMENT = AddressPolicy(loopback=True, private=True)
ALLOWED = None

# address: (strict, saas, development); a label where the guard refuses, None where it allows.
DECISIONS = {
    # Public addresses pass everywhere.
    "93.184.215.14": (ALLOWED, ALLOWED, ALLOWED),
    "8.8.8.8": (ALLOWED, ALLOWED, ALLOWED),
    "2606:4700:4700::1111": (ALLOWED, ALLOWED, ALLOWED),
    # Loopback: development only.
    "127.0.0.1": ("loopback", "loopback", ALLOWED),
    "127.255.0.9": ("loopback", "loopback", ALLOWED),
    "::1": ("loopback", "loopback", ALLOWED),
    # RFC 1918 and fd00::/8: SaaS or development.
    "10.0.0.1": ("private (RFC 1918)", ALLOWED, ALLOWED),
    "172.16.0.1": ("private (RFC 1918)", ALLOWED, ALLOWED),
    "172.31.255.254": ("private (RFC 1918)", ALLOWED, ALLOWED),
    "192.168.1.1": ("private (RFC 1918)", ALLOWED, ALLOWED),
    "fd12:3456::1": ("unique local (fd00::/8)", ALLOWED, ALLOWED),
    # Just outside the private ranges.
    "172.15.255.255": (ALLOWED, ALLOWED, ALLOWED),
    "172.32.0.0": (ALLOWED, ALLOWED, ALLOWED),
    # Always refused.
    "0.0.0.0": ("unspecified",) * 3,  # noqa: S104 - an address checked, not bound
    "0.1.2.3": ("unspecified",) * 3,
    "::": ("unspecified",) * 3,
    "169.254.169.254": ("link-local",) * 3,
    "169.254.0.1": ("link-local",) * 3,
    "fe80::1": ("link-local",) * 3,
    "febf::1": ("link-local",) * 3,
    "100.64.0.1": ("shared address space (100.64.0.0/10)",) * 3,
    "100.127.255.255": ("shared address space (100.64.0.0/10)",) * 3,
    "fc00::1": ("unique local (fc00::/7)",) * 3,
    "fcff::1": ("unique local (fc00::/7)",) * 3,
    "192.0.2.10": ("documentation (TEST-NET-1)",) * 3,
    "198.51.100.10": ("documentation (TEST-NET-2)",) * 3,
    "203.0.113.10": ("documentation (TEST-NET-3)",) * 3,
    "2001:db8::1": ("documentation (2001:db8::/32)",) * 3,
    "224.0.0.1": ("multicast",) * 3,
    "239.255.255.250": ("multicast",) * 3,
    "ff02::1": ("multicast",) * 3,
    "ff0e::1": ("multicast",) * 3,
    "240.0.0.1": ("reserved",) * 3,
    "255.255.255.255": ("reserved",) * 3,
    # IPv4-mapped IPv6 and NAT64 are judged as the IPv4 address they carry.
    "::ffff:169.254.169.254": ("link-local",) * 3,
    "::ffff:127.0.0.1": ("loopback", "loopback", ALLOWED),
    "::ffff:10.1.2.3": ("private (RFC 1918)", ALLOWED, ALLOWED),
    "::ffff:93.184.215.14": (ALLOWED, ALLOWED, ALLOWED),
    "64:ff9b::a9fe:a9fe": ("link-local",) * 3,
    "64:ff9b::5db8:d70e": (ALLOWED, ALLOWED, ALLOWED),
}


@pytest.mark.parametrize("address", list(DECISIONS))
@pytest.mark.parametrize(
    ("policy", "column"), [(STRICT, 0), (SAAS, 1), (DEVELOPMENT, 2)], ids=["strict", "saas", "dev"]
)
def test_the_guard_decides_by_the_table(address: str, policy: AddressPolicy, column: int) -> None:
    assert address_refusal(ipaddress.ip_address(address), policy) == DECISIONS[address][column]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, STRICT),
        ({"MOLECULE_ENV": "development"}, DEVELOPMENT),
        ({"MOLECULE_ENV": " Dev \n"}, DEVELOPMENT),
        ({"MOLECULE_ENV": "DEVELOPMENT"}, DEVELOPMENT),
        ({"MOLECULE_ENV": "production"}, STRICT),
        ({"MOLECULE_ENV": "staging"}, STRICT),
        ({"MOLECULE_ENV": "develop"}, STRICT),
        # DEBUG is not the switch.
        ({"DEBUG": True}, STRICT),
        ({"MOLECULE_DEPLOY_MODE": "saas"}, SAAS),
        ({"MOLECULE_DEPLOY_MODE": " SaaS "}, SAAS),
        ({"MOLECULE_DEPLOY_MODE": "self-hosted"}, STRICT),
        ({"MOLECULE_ORG_ID": "org-7"}, SAAS),
        ({"MOLECULE_ORG_ID": "  "}, STRICT),
        # An explicit mode wins over the org id.
        ({"MOLECULE_DEPLOY_MODE": "standalone", "MOLECULE_ORG_ID": "org-7"}, STRICT),
        ({"MOLECULE_DEPLOY_MODE": "saas", "MOLECULE_ENV": "dev"}, DEVELOPMENT),
    ],
    ids=lambda value: repr(value) if isinstance(value, dict) else "",
)
def test_the_policy_comes_from_the_settings(settings: dict, expected: AddressPolicy) -> None:
    with override_settings(**settings):
        assert AddressPolicy.current() == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "url scheme must be http or https, got 'ftp'"),
        ("file:///etc/passwd", "url scheme must be http or https, got 'file'"),
        ("gopher://127.0.0.1:70/", "url scheme must be http or https, got 'gopher'"),
        ("example.com/hook", "url scheme must be http or https, got ''"),
        ("http://", "url has no host"),
        ("http://:80/", "url has no host"),
        ("http://example.com:99999/", "url is not valid: Port out of range 0-65535"),
        ("http://user:pass@example.com/", "url must not carry a user name or password"),
        ("http://93.184.215.14@169.254.169.254/", "url must not carry a user name or password"),
        ("http://example.com/a b", "url must not contain spaces or control characters"),
        (
            "http://example.com/\r\nX-Injected: 1",
            "url must not contain spaces or control characters",
        ),
        ("http://example.com/\x7f", "url must not contain spaces or control characters"),
    ],
)
def test_url_target_refuses_what_is_not_an_http_url(url: str, message: str) -> None:
    with pytest.raises(AddressRefused) as refused:
        url_target(url)

    assert str(refused.value) == message


def test_url_target_keeps_the_path_and_defaults_the_port() -> None:
    assert url_target("HTTPS://Agent.Example/a2a/?x=1") == (
        "https",
        "agent.example",
        443,
        "/a2a/?x=1",
    )
    assert url_target("http://[::1]:8080") == ("http", "::1", 8080, "")


# --- resolution, through the resolver fixture: names the tests control ----------------------


def test_a_name_is_refused_when_any_address_it_resolves_to_is(resolver) -> None:
    resolver["mixed.test"] = [["93.184.215.14", "169.254.169.254"]]

    with pytest.raises(AddressRefused) as refused:
        url_check("https://mixed.test/hook", STRICT)

    assert str(refused.value) == (
        "url host 'mixed.test' resolves to a blocked address: link-local (169.254.169.254)"
    )


def test_a_name_that_resolves_to_allowed_addresses_passes(resolver) -> None:
    resolver["agent.test"] = [["93.184.215.14", "2606:4700:4700::1111"]]

    assert url_check("https://agent.test:8443/a2a", STRICT) == (
        "https",
        "agent.test",
        8443,
        "/a2a",
    )


def test_a_name_that_does_not_resolve_fails_closed(resolver) -> None:
    with pytest.raises(AddressUnresolved) as refused:
        url_check("https://nowhere.test/", DEVELOPMENT)

    assert str(refused.value).startswith("url host 'nowhere.test' does not resolve: ")


def test_a_literal_address_names_the_rule(resolver) -> None:
    with pytest.raises(AddressRefused) as refused:
        url_check("http://127.0.0.1:8000/", STRICT)

    assert str(refused.value) == "url targets a blocked address: loopback"


def test_localhost_is_loopback_outside_development() -> None:
    with pytest.raises(AddressRefused, match="resolves to a blocked address: loopback"):
        url_check("http://localhost:8000/", SAAS)
    assert url_check("http://localhost:8000/", DEVELOPMENT).host == "localhost"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def test_the_dial_goes_to_the_address_that_was_checked(resolver, listener) -> None:
    port = listener.getsockname()[1]
    # Rebinding: the first answer is the one checked and dialled; a later one never counts.
    resolver["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]

    with connection_open("rebind.test", port, timeout=5, policy=DEVELOPMENT) as sock:
        assert sock.getpeername() == ("127.0.0.1", port)
    assert resolver["rebind.test"] == [["169.254.169.254"]]


def test_a_refused_answer_is_never_dialled(resolver, listener) -> None:
    port = listener.getsockname()[1]
    resolver["rebind.test"] = [["127.0.0.1", "169.254.169.254"]]

    with pytest.raises(AddressRefused, match=r"link-local \(169\.254\.169\.254\)"):
        connection_open("rebind.test", port, timeout=5, policy=DEVELOPMENT)

    # Not even the allowed address of the answer was connected to.
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_every_address_is_tried_before_giving_up(resolver, listener) -> None:
    port = listener.getsockname()[1]
    # ::1 first: nothing listens there on this port, so the next address is dialled.
    resolver["dual.test"] = [["::1", "127.0.0.1"]]

    with connection_open("dual.test", port, timeout=5, policy=DEVELOPMENT) as sock:
        assert sock.getpeername() == ("127.0.0.1", port)


def test_a_refused_connection_raises_the_last_error(resolver) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    # Closed: nothing listens there any more.
    with pytest.raises(ConnectionRefusedError):
        connection_open("127.0.0.1", port, timeout=5, policy=DEVELOPMENT)
