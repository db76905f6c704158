"""A client-side deadline on every database wait of a web process, and the watchdog behind it.

A frozen PostgreSQL (SIGSTOP, a hung disk) still has a kernel that accepts connections, ACKs
bytes and answers keepalive probes, so a query waiting for its answer would wait for ever and
hold its gunicorn thread with it; TCP keepalives and tcp_user_timeout (the settings) catch only
a peer that stops answering at the TCP level, a network partition. So every blocking psycopg
operation, which all go through ``Connection.wait()`` (queries, fetches, COPY writes, commits,
Django's is_usable check), is marked "waiting since T" on its connection, and one watchdog thread
per process shuts the socket down under an operation that has waited DB_CLIENT_TIMEOUT. The
blocked call then fails at once with OperationalError, which DatabaseUnavailableMiddleware
answers as JSON 503; Django discards the broken connection and the next request connects anew.

The deadline is per wait, not per request: a 100 MiB upload is a hundred 1 MiB COPY writes and
a download one statement per chunk, each a short wait. molecule.wsgi enables it, so it applies
to the web processes only; commands and qcluster keep their long statements (the settings'
statement_timeout and django-q2's task timeout bound those).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from molecule import conf, metrics

logger = logging.getLogger(__name__)

# Django's is_usable (a SELECT 1, run when a request that met a database error ends) answers
# in milliseconds on a live server; kept short, so that a frozen server's request is answered
# and its thread freed soon after the cut.
HEALTH_CHECK_SECONDS = 2.0
# How often the watchdog looks while operations wait; it sleeps when none does.
TICK_SECONDS = 0.25

_local = threading.local()


class Watchdog:
    """The operations waiting on a database socket, and the thread that cuts the overdue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = threading.Condition(self._lock)
        # token -> (monotonic deadline, socket fd, seconds allowed)
        self._waits: dict[int, tuple[float, int, float]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def begin(self, fd: int, seconds: float) -> int:
        token = next(self._tokens)
        with self._lock:
            self._waits[token] = (time.monotonic() + seconds, fd, seconds)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="db-deadline-watchdog", daemon=True
                )
                self._thread.start()
            self._busy.notify()
        return token

    def end(self, token: int) -> None:
        with self._lock:
            self._waits.pop(token, None)

    def _run(self) -> None:
        with self._lock:
            while True:
                if not self._waits:
                    self._busy.wait()
                now = time.monotonic()
                for token, (deadline, fd, seconds) in list(self._waits.items()):
                    if deadline <= now:
                        # Under the lock: the waiting call is still inside wait(), so its
                        # connection, and this fd, cannot have been closed meanwhile.
                        del self._waits[token]
                        _shutdown(fd, seconds)
                self._busy.wait(TICK_SECONDS)


def _shutdown(fd: int, seconds: float) -> None:
    """Shut the connection's socket down: the blocked poll wakes and libpq reads end of file."""
    # A duplicate descriptor, so closing ours leaves libpq's open; shutdown() acts on the
    # socket itself, whichever descriptor names it.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)
    metrics.db_client_timeouts.inc()
    logger.warning("database did not answer within %.1f s; connection cut", seconds)


WATCHDOG = Watchdog()


def _fresh_watchdog_after_fork() -> None:
    # A forked child inherits neither the thread nor anything that waits in it.
    global WATCHDOG
    WATCHDOG = Watchdog()


os.register_at_fork(after_in_child=_fresh_watchdog_after_fork)


def _seconds() -> float:
    limit = conf.db_client_timeout().total_seconds()
    shorter = getattr(_local, "limit", None)
    if shorter is not None and (limit <= 0 or shorter < limit):
        return shorter
    return max(limit, 0.0)


@contextlib.contextmanager
def shorter_deadline(seconds: float) -> Iterator[None]:
    """Within the block, this thread's waits get at most ``seconds``."""
    outer = getattr(_local, "limit", None)
    _local.limit = seconds if outer is None else min(seconds, outer)
    try:
        yield
    finally:
        _local.limit = outer


def _watched_wait(raw: Any, wait: Callable[..., Any]) -> Callable[..., Any]:
    def watched(*args: Any, **kwargs: Any) -> Any:
        seconds = _seconds()
        if not seconds:
            return wait(*args, **kwargs)
        try:
            fd = raw.pgconn.socket
        except Exception:
            # A closed connection: psycopg raises its own error without waiting.
            return wait(*args, **kwargs)
        token = WATCHDOG.begin(fd, seconds)
        try:
            return wait(*args, **kwargs)
        finally:
            WATCHDOG.end(token)

    return watched


def _quick_health_check(is_usable: Callable[[], bool]) -> Callable[[], bool]:
    def checked() -> bool:
        with shorter_deadline(HEALTH_CHECK_SECONDS):
            return is_usable()

    checked.quick = True  # type: ignore[attr-defined]
    return checked


def connection_watch(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created: put this new connection's waits under the watchdog."""
    if connection.vendor != "postgresql":
        return
    raw = connection.connection
    # An instance attribute: psycopg's cursors, copies and commits call self.wait().
    raw.wait = _watched_wait(raw, raw.wait)
    if not getattr(connection.is_usable, "quick", False):
        connection.is_usable = _quick_health_check(connection.is_usable)  # type: ignore[method-assign]


def enable() -> None:
    """Watch every database connection this process opens from now on (molecule.wsgi)."""
    connection_created.connect(connection_watch, dispatch_uid="molecule.dbdeadline")


def disable() -> None:
    connection_created.disconnect(dispatch_uid="molecule.dbdeadline")
