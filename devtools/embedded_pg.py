"""Start (or reuse) the embedded PostgreSQL that ``pgserver`` ships, and stop what we started."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import time
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

# PostgreSQL's fast shutdown (SIGINT) rolls back open transactions and stops within a second
# on an idle dev server; after this long the immediate shutdown (SIGQUIT) follows.
FAST_SHUTDOWN_SECONDS = 3.0


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


def _running_url(data_dir: Path) -> str | None:
    """The URI of a server already running on ``data_dir``, read from ``postmaster.pid``.

    Its fifth line is the socket directory (pgserver listens on no TCP port), its eighth the
    status, "ready" once connections are accepted. Reusing a running
    server this way skips pgserver, whose machine-wide lock may be held by other servers'
    start-ups for seconds.
    """
    try:
        lines = (data_dir / "postmaster.pid").read_text().split("\n")
    except OSError:
        return None
    if len(lines) < 8 or not lines[4].startswith("/") or lines[7].strip() != "ready":
        return None
    if _postmaster_pid(data_dir) is None:
        return None
    return f"postgresql://postgres:@/postgres?host={lines[4]}"


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid in ``postmaster.pid`` when that process is alive, else None."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, and another user's
    return pid


class EmbeddedPostgres:
    """One embedded server on ``data_dir``; ``started`` says whether this process started it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.url = ""
        self.started = False

    def start(self) -> str:
        """Start the server unless one runs on the directory already; return its libpq URI."""
        # pg_ctl's "-o -k <dir>" arguments are not quoted by pgserver, so a space breaks startup.
        if " " in str(self.data_dir):
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL data directory may not contain a space: {self.data_dir}"
            )
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        running = _running_url(self.data_dir)
        if running is not None:
            self.url = running
            return self.url
        self.started = True
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback in /tmp is fine.
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError:
                raise EmbeddedPostgresError(
                    "pgserver is not installed: install the devtools extra "
                    "(pip install -e '.[devtools]'), or set DATABASE_URL"
                ) from None
            # pgserver logs every initdb and pg_ctl call at INFO, and more at interpreter exit.
            logging.getLogger("pgserver").setLevel(logging.WARNING)
            try:
                # No cleanup mode: pgserver's own stop counts handles in a file that a killed
                # process never leaves; stop() below decides instead.
                server = pgserver.get_server(self.data_dir, cleanup_mode=None)
            except Exception as exc:
                raise EmbeddedPostgresError(
                    f"could not start the embedded PostgreSQL in {self.data_dir}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                ) from None
        # pgserver's exit hook takes the same machine-wide lock, and would hold up our exit
        # (Ctrl-C) while another server starts; with no cleanup mode it has nothing to do.
        atexit.unregister(server._cleanup)
        self.url = server.get_uri()
        return self.url

    def stop(self, *, fast_seconds: float = FAST_SHUTDOWN_SECONDS) -> None:
        """Stop the server on the directory (fast shutdown, then immediate); idempotent.

        An immediate shutdown is safe: the next start replays the WAL.
        """
        pid = _postmaster_pid(self.data_dir)
        if pid is None:
            return
        for sig, wait in ((signal.SIGINT, fast_seconds), (signal.SIGQUIT, 2.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if _postmaster_pid(self.data_dir) != pid:
                    return
                time.sleep(0.05)
        logger.warning("embedded PostgreSQL (pid %s) did not stop", pid)


def embedded_database_url(data_dir: Path) -> str:
    """Return a libpq URI for a server on ``data_dir``, starting one if none runs there.

    The server keeps running; the caller stops it with ``EmbeddedPostgres(data_dir).stop()``.
    """
    return EmbeddedPostgres(data_dir).start()
