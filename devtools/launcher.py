"""bin/run: migrate, create an admin login, then run gunicorn and qcluster until Ctrl-C.

Starts the embedded PostgreSQL when DATABASE_URL is unset and passes its URL to what it
starts. Every child leads its own process group, so the terminal's Ctrl-C reaches only this
process, which then stops the children in order (SIGTERM, then SIGKILL to each group) and
the database last, so no child outlives the server it talks to.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from devtools.devenv import BASE_DIR, data_dir, dev_environment, embedded_pg_dir
from devtools.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from devtools.processes import (
    gunicorn_command,
    qcluster_command,
    reset_metrics_dir,
    run_manage,
    stop_processes,
)

# Ctrl-C must be done within 5 s: children get this long after SIGTERM (then SIGKILL), the
# database this long for its fast shutdown (then the immediate one, which takes no time).
CHILD_STOP_SECONDS = 3.0
DATABASE_STOP_SECONDS = 1.5


class LaunchError(Exception):
    """A reason not to start, shown as one line."""


def _say(message: str) -> None:
    print(f"[molecule] {message}", flush=True)


def _check_port_free(host: str, port: str) -> None:
    """Fail before anything is touched when another process listens on the port."""
    try:
        number = int(port)
    except ValueError:
        raise LaunchError(f"MOLECULE_PORT must be a port number, got {port!r}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As gunicorn binds: a port in TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, number))
        except OSError as exc:
            raise LaunchError(
                f"{host}:{number} is in use ({exc.strerror}): set MOLECULE_PORT to a free port"
            ) from None


def _lock_checkout() -> IO[str]:
    """Hold .data/run.lock while running: a second bin/run must not reset our metrics."""
    data_dir().mkdir(parents=True, exist_ok=True)
    handle = (data_dir() / "run.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise LaunchError(f"bin/run already runs in this checkout (pid {pid})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _ensure_admin(env: dict[str, str]) -> None:
    script = (
        "from django.contrib.auth import get_user_model;"
        "print(get_user_model().objects.filter(is_superuser=True).exists())"
    )
    # -v 0: Django 5.2's shell otherwise reports its automatic imports on stdout.
    if run_manage(env, "shell", "-v", "0", "-c", script).stdout.strip() == "True":
        _say("admin login exists (reset it with: bin/manage changepassword admin)")
        return
    password = secrets.token_urlsafe(12)
    child_env = {**env, "DJANGO_SUPERUSER_PASSWORD": password}
    run_manage(
        child_env,
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@localhost",
    )
    _say(f"created admin login: admin / {password}  (shown once)")


def _setup(env: dict[str, str]) -> None:
    try:
        run_manage(env, "migrate", "--noinput")
        _ensure_admin(env)
    except subprocess.CalledProcessError as exc:
        # manage.py already says what went wrong in one line (configuration, database).
        lines = (exc.stderr or "").strip().splitlines()
        raise LaunchError(lines[-1] if lines else f"manage.py {exc.cmd[2]} failed") from None


def _serve(env: dict[str, str], host: str, port: str) -> int:
    spawn: dict[str, Any] = {"env": env, "cwd": BASE_DIR, "start_new_session": True}
    processes = [
        subprocess.Popen(gunicorn_command(f"{host}:{port}"), **spawn),
        subprocess.Popen(qcluster_command(), **spawn),
    ]
    try:
        shown_host = f"[{host}]" if ":" in host else host
        _say(f"admin:   http://{shown_host}:{port}/admin/")
        _say(f"metrics: http://{shown_host}:{port}/metrics")
        _say("press Ctrl-C to stop")
        while all(process.poll() is None for process in processes):
            time.sleep(0.2)
        _say("a service process exited; stopping the rest")
        return 1
    except KeyboardInterrupt:
        _say("stopping")
        return 0
    finally:
        # Ctrl-C again must not cut the stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # What each would get from a terminal's Ctrl-C, once: gunicorn's SIGINT is its quick
        # shutdown (a dev server drops its requests in flight); qcluster's SIGTERM lets the
        # running task finish.
        stop_processes(processes, grace=CHILD_STOP_SECONDS, signals=[signal.SIGINT, signal.SIGTERM])
        for process in processes:
            # Workers a master left behind share its group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # Started in the background by a script, SIGINT arrives ignored; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    host = os.environ.get("MOLECULE_HOST", "127.0.0.1")
    port = os.environ.get("MOLECULE_PORT", "8000")
    server: EmbeddedPostgres | None = None
    lock: IO[str] | None = None
    try:
        _check_port_free(host, port)
        lock = _lock_checkout()
        env = dev_environment()
        if not env.get("DATABASE_URL"):
            server = EmbeddedPostgres(embedded_pg_dir(env))
            env["DATABASE_URL"] = server.start()
            _say(f"embedded PostgreSQL running on {server.data_dir}")
        # One directory shared by gunicorn and qcluster, emptied before either starts.
        reset_metrics_dir(Path(env["PROMETHEUS_MULTIPROC_DIR"]))
        _setup(env)
        code = _serve(env, host, port)
    except (LaunchError, EmbeddedPostgresError) as exc:
        print(f"[molecule] {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if server is not None:
            # bin/run owns the checkout's server: it stops it even when it found it running
            # (left by a killed run), so nothing outlives the run command.
            server.stop(fast_seconds=DATABASE_STOP_SECONDS)
        if lock is not None:
            lock.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
