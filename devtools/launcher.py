"""The README's run command: migrate, create an admin login, then run gunicorn and qcluster.

Starts the embedded PostgreSQL when DATABASE_URL is unset and keeps it up while the service
runs; Ctrl-C stops gunicorn, qcluster and that server.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from devtools.processes import (
    gunicorn_command,
    manage_command,
    qcluster_command,
    reset_metrics_dir,
    stop_processes,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"


def _say(message: str) -> None:
    print(f"[molecule] {message}", flush=True)


def _secret_key() -> str:
    """A per-checkout key kept in .data/, so sessions survive restarts of the run command."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _prepare_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
    env.setdefault("DEBUG", "1")
    env.setdefault("SECRET_KEY", _secret_key())
    if not env.get("DATABASE_URL"):
        from devtools.embedded_pg import EmbeddedPostgresError, embedded_database_url

        data_dir = Path(env.get("MOLECULE_EMBEDDED_PG_DIR", DATA_DIR / "postgres"))
        try:
            # This process holds the server; it stops when this launcher exits.
            env["DATABASE_URL"] = embedded_database_url(data_dir)
        except EmbeddedPostgresError as exc:
            sys.exit(f"[molecule] {exc}")
        _say(f"embedded PostgreSQL running on {data_dir}")
    # One directory shared by gunicorn and qcluster, emptied before either starts.
    reset_metrics_dir(
        Path(env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(DATA_DIR / "prometheus")))
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        manage_command(*args),
        env=env,
        cwd=BASE_DIR,
        check=True,
        text=True,
        capture_output=True,
    )


def _ensure_admin(env: dict[str, str]) -> None:
    script = (
        "from django.contrib.auth import get_user_model;"
        "print(get_user_model().objects.filter(is_superuser=True).exists())"
    )
    # -v 0: Django 5.2's shell otherwise reports its automatic imports on stdout.
    if _manage(env, "shell", "-v", "0", "-c", script).stdout.strip() == "True":
        _say("admin login exists (reset it with: .venv/bin/python manage.py changepassword admin)")
        return
    password = secrets.token_urlsafe(12)
    child_env = {**env, "DJANGO_SUPERUSER_PASSWORD": password}
    _manage(
        child_env,
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@localhost",
    )
    _say(f"created admin login: admin / {password}  (shown once)")


def main() -> int:
    env = _prepare_environment()
    host = env.get("MOLECULE_HOST", "127.0.0.1")
    port = env.get("MOLECULE_PORT", "8000")
    try:
        _manage(env, "migrate", "--noinput")
        _ensure_admin(env)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr or "")
        sys.exit(f"[molecule] {' '.join(exc.cmd[2:3])} failed (exit {exc.returncode})")
    processes = [
        subprocess.Popen(
            gunicorn_command(f"{host}:{port}", int(env.get("WEB_CONCURRENCY", "2"))),
            env=env,
            cwd=BASE_DIR,
        ),
        subprocess.Popen(qcluster_command(), env=env, cwd=BASE_DIR),
    ]
    shown_host = f"[{host}]" if ":" in host else host
    _say(f"admin:   http://{shown_host}:{port}/admin/")
    _say(f"metrics: http://{shown_host}:{port}/metrics")
    _say("press Ctrl-C to stop")

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    exit_code = 0
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        exit_code = 1
        _say("a service process exited; stopping the rest")
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_processes(processes)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
