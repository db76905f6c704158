"""Small probes of a running service: free ports, HTTP GETs, metric values, database URLs."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from prometheus_client.parser import text_string_to_metric_families

# libpq connection parameters worth carrying from OPTIONS into the URL; the rest (pool,
# isolation level, server-side binding) are Django's, not libpq's.
_LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "target_session_attrs")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_from_settings(settings_dict: dict[str, Any]) -> str:
    """Build a libpq URL for ``django.db.connection.settings_dict`` (TCP or Unix socket)."""
    options = settings_dict.get("OPTIONS") or {}
    user = quote(str(settings_dict.get("USER") or ""), safe="")
    password = quote(str(settings_dict.get("PASSWORD") or ""), safe="")
    name = quote(str(settings_dict.get("NAME") or ""), safe="")
    host = str(options.get("host") or settings_dict.get("HOST") or "")
    port = str(options.get("port") or settings_dict.get("PORT") or "")
    query: dict[str, str] = {}
    if host.startswith("/"):
        # A socket directory cannot sit in the authority part; libpq takes it as ?host=.
        query["host"] = host
        if port:
            query["port"] = port
        netloc = ""
    else:
        netloc = f"[{host}]" if ":" in host else host
        if port:
            netloc = f"{netloc}:{port}"
    for key in _LIBPQ_OPTIONS:
        if options.get(key):
            query[key] = str(options[key])
    auth = ""
    if user:
        auth = f"{user}:{password}@" if password else f"{user}@"
    url = f"postgresql://{auth}{netloc}/{name}"
    return f"{url}?{urlencode(query)}" if query else url


def http_get(
    url: str, *, token: str | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``; return (status, headers, body) without raising on 4xx/5xx."""
    request = urllib.request.Request(url)  # noqa: S310 (the callers pass http:// URLs)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None
