"""A prototype on the path to 1.0x the floor: the service with a per-process cache of polls.

The upper bound of a head-of-feed cache (kept by LISTEN/NOTIFY, say): every poll after the
first is answered from process memory, with no database round trip at all, and the cache is
never wrong because the bench writes nothing while it polls. Everything else is the
service's own path (middleware, the token checked against the cached credentials, the
JSON). Not for production: nothing invalidates it (docs/benchmarks.md says what keeping it
exact would cost).

    gunicorn -c gunicorn.conf.py bench.cached_poll:application
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from molecule import wsgi


@contextlib.contextmanager
def cached_feed() -> Iterator[None]:
    """ActivityLog.objects.feed answers each (workspace, cursor, filters) from memory after its
    first read, until the block ends."""
    from molecule.models import ActivityLog

    manager = ActivityLog.objects
    read = manager.feed
    pages: dict[Any, Any] = {}

    def feed(workspace_id: Any, *, since_id: str | None, filters: Any) -> Any:
        key = (workspace_id, since_id, filters)
        page = pages.get(key)
        if page is None:
            page = pages[key] = read(workspace_id, since_id=since_id, filters=filters)
        return page

    manager.feed = feed  # type: ignore[method-assign]
    try:
        yield
    finally:
        del manager.feed


class _CachedService:
    """The service's WSGI application with cached_feed() on for the life of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: contextlib.ExitStack | None = None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    stack = contextlib.ExitStack()
                    stack.enter_context(cached_feed())
                    self._cache = stack
        return wsgi.application(environ, start_response)


application = _CachedService()
