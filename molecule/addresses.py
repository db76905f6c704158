"""The address guard: which workspace URLs the platform may register and connect to."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from molecule import conf

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# What socket.getaddrinfo returns, one entry per address.
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple]

DEVELOPMENT_ENVS = frozenset({"development", "dev"})

_LOOPBACK = "loopback"
_PRIVATE = "private"
_ALWAYS = "always"

# (network, label, when it is allowed). The first match decides; an address that matches
# nothing is allowed. Upstream checks registration and forwards against two lists that differ
# (multicast, 0.0.0.0, 2001:db8::/32); one table serves both here and refuses all of them.
_RULES: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, str], ...] = tuple(
    (ipaddress.ip_network(network), label, allowed)
    for network, label, allowed in (
        ("0.0.0.0/8", "unspecified", _ALWAYS),
        ("127.0.0.0/8", "loopback", _LOOPBACK),
        ("10.0.0.0/8", "private (RFC 1918)", _PRIVATE),
        ("172.16.0.0/12", "private (RFC 1918)", _PRIVATE),
        ("192.168.0.0/16", "private (RFC 1918)", _PRIVATE),
        ("100.64.0.0/10", "shared address space (100.64.0.0/10)", _ALWAYS),
        # The cloud metadata service (169.254.169.254) is here.
        ("169.254.0.0/16", "link-local", _ALWAYS),
        ("192.0.2.0/24", "documentation (TEST-NET-1)", _ALWAYS),
        ("198.51.100.0/24", "documentation (TEST-NET-2)", _ALWAYS),
        ("203.0.113.0/24", "documentation (TEST-NET-3)", _ALWAYS),
        ("224.0.0.0/4", "multicast", _ALWAYS),
        # Reserved, and 255.255.255.255 (broadcast): nothing a workspace can listen on.
        ("240.0.0.0/4", "reserved", _ALWAYS),
        ("::/128", "unspecified", _ALWAYS),
        ("::1/128", "loopback", _LOOPBACK),
        ("fe80::/10", "link-local", _ALWAYS),
        ("fd00::/8", "unique local (fd00::/8)", _PRIVATE),
        ("fc00::/7", "unique local (fc00::/7)", _ALWAYS),
        ("ff00::/8", "multicast", _ALWAYS),
        ("2001:db8::/32", "documentation (2001:db8::/32)", _ALWAYS),
    )
)
# IPv6 forms that carry an IPv4 address, judged as that address: IPv4-mapped (::ffff:a.b.c.d),
# which the kernel connects over IPv4, and the NAT64 well-known prefix, which a NAT64
# gateway translates to it.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    """The URL or an address it resolves to is not one the platform may connect to."""


class AddressUnresolved(AddressRefused):
    """The URL's host name does not resolve; refused, since nothing could be checked."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which of the conditional ranges are allowed: loopback, and private (RFC 1918, fd00::/8)."""

    loopback: bool = False
    private: bool = False

    @classmethod
    def current(cls) -> AddressPolicy:
        """The policy the settings name, read now (override_settings applies)."""
        development = conf.molecule_env().strip().lower() in DEVELOPMENT_ENVS
        return cls(loopback=development, private=development or saas_mode())


def saas_mode() -> bool:
    """MOLECULE_DEPLOY_MODE=saas, or when it is unset a non-empty MOLECULE_ORG_ID (upstream)."""
    mode = conf.deploy_mode().strip().lower()
    if mode:
        # The settings refuse any other value; anything else set in code counts as self-hosted.
        return mode == "saas"
    return bool(conf.org_id().strip())


def address_refusal(address: IPAddress, policy: AddressPolicy) -> str | None:
    """The label of the rule that refuses ``address`` under ``policy``, or None if allowed."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    for network, label, allowed in _RULES:
        if address.version == network.version and address in network:
            if allowed == _LOOPBACK and policy.loopback:
                return None
            if allowed == _PRIVATE and policy.private:
                return None
            return label
    return None


class Target(NamedTuple):
    """The parts of a workspace URL that the platform connects with."""

    scheme: str
    host: str
    port: int
    # Everything after the authority, as the workspace registered it.
    path: str

    @property
    def tls(self) -> bool:
        return self.scheme == "https"


def url_target(url: str) -> Target:
    """Split an http(s) URL into what a connection needs, or raise AddressRefused."""
    if any(char <= " " or char == "\x7f" for char in url):
        # No HTTP request line can carry them; urlsplit would pass some through.
        raise AddressRefused("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"url is not valid: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise AddressRefused(f"url scheme must be http or https, got {parts.scheme!r}")
    if not parts.hostname:
        raise AddressRefused("url has no host")
    if parts.username is not None or parts.password is not None:
        # A credential in the URL would be sent nowhere (the platform sends its own), and a
        # userinfo@ part only serves to disguise the host.
        raise AddressRefused("url must not carry a user name or password")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, parts.hostname, port or (443 if scheme == "https" else 80), path)


def addresses_resolve(host: str, port: int, policy: AddressPolicy) -> list[AddrInfo]:
    """Every address ``host`` resolves to, each one checked; raise AddressRefused if any fails.

    One lookup serves both the check and the dial, so a name that answers differently the
    second time (DNS rebinding) cannot reach an address that was never checked.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise AddressUnresolved(f"url host {host!r} does not resolve: {exc}") from None
    if not found:
        raise AddressUnresolved(f"url host {host!r} resolves to no address")
    literal = _is_literal(host)
    for entry in found:
        # A link-local IPv6 answer carries its zone ("fe80::1%eth0"); the rule ignores it.
        address = ipaddress.ip_address(str(entry[4][0]).partition("%")[0])
        label = address_refusal(address, policy)
        if label is not None:
            if literal:
                raise AddressRefused(f"url targets a blocked address: {label}")
            raise AddressRefused(
                f"url host {host!r} resolves to a blocked address: {label} ({address})"
            )
    return found


def url_check(url: str, policy: AddressPolicy | None = None) -> Target:
    """The URL's target if it is http(s) and every address it resolves to is allowed.

    Raise AddressRefused (AddressUnresolved for a name that does not resolve) otherwise.
    """
    target = url_target(url)
    addresses_resolve(target.host, target.port, policy or AddressPolicy.current())
    return target


def connection_open(
    host: str, port: int, *, timeout: float, policy: AddressPolicy
) -> socket.socket:
    """A TCP connection to ``host``, dialled only to addresses the guard checked just before.

    Tries each checked address in turn, as socket.create_connection does; raises
    AddressRefused before any packet is sent when one of them is refused, else the last
    connection error.
    """
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in addresses_resolve(host, port, policy):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        return sock
    assert last_error is not None  # addresses_resolve returns at least one address
    raise last_error


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
