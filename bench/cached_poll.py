"""A prototype on the path to 1.0x the floor: the service with a per-process cache of polls.

The upper bound of a head-of-feed cache (kept by LISTEN/NOTIFY, say): every poll after the
first is answered from process memory, with no database round trip at all, and the cache is
never wrong because the bench writes nothing while it polls. Everything else is the
service's own path (middleware, authentication of the token against the cached
credentials, the JSON). Not for production: nothing invalidates it (docs/benchmarks.md says
what keeping it exact would cost).

    gunicorn -c gunicorn.conf.py bench.cached_poll:application
"""

from __future__ import annotations

from typing import Any

from molecule import wsgi
from molecule.managers import FeedPage

_pages: dict[Any, FeedPage] = {}


def _install() -> None:
    """Put the cache in front of ActivityLog.objects.feed (Django is set up by now)."""
    from molecule.models import ActivityLog

    read = ActivityLog.objects.feed

    def cached_feed(workspace_id: Any, *, since_id: str | None, filters: Any) -> FeedPage:
        key = (workspace_id, since_id, filters)
        page = _pages.get(key)
        if page is None:
            page = _pages[key] = read(workspace_id, since_id=since_id, filters=filters)
        return page

    ActivityLog.objects.feed = cached_feed  # type: ignore[method-assign]


_install()
application = wsgi.application
