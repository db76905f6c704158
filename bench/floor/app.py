"""The WSGI application: routes the bench's requests to their handlers, 404 for the rest."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from bench.floor.feed import inbox_ack, poll
from bench.floor.uploads import ack, content, upload
from bench.floor.wire import Answer


def ready(environ: dict[str, Any]) -> bytes:
    return b"{}"


ROUTES: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
    ("GET", re.compile(r"/workspaces/([^/]+)/activity"), poll),
    ("POST", re.compile(r"/workspaces/([^/]+)/activity/ack"), inbox_ack),
    ("POST", re.compile(r"/workspaces/([^/]+)/chat/uploads"), upload),
    ("GET", re.compile(r"/workspaces/([^/]+)/pending-uploads/([^/]+)/content"), content),
    ("POST", re.compile(r"/workspaces/([^/]+)/pending-uploads/([^/]+)/ack"), ack),
    ("GET", re.compile(r"/ready"), ready),
]


def route(method: str, path: str) -> tuple[Callable[..., Any], list[Any]] | None:
    """The handler for ``method`` and ``path``, and its arguments (the workspace id first)."""
    for allowed, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and method == allowed:
            groups = match.groups()
            return handler, [uuid.UUID(groups[0]), *groups[1:]] if groups else []
    return None


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    found = route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""))
    if found is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error":"not found"}']
    handler, args = found
    try:
        answer = handler(environ, *args)
    except Answer as exc:
        start_response(exc.status, [("Content-Type", "application/json")])
        return [exc.body]
    if isinstance(answer, tuple):
        headers, body = answer
        start_response("200 OK", headers)
        return body
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]
