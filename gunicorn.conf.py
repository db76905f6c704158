"""Production settings for gunicorn, which reads ./gunicorn.conf.py by default (docs/operations.md).

Threaded workers (gthread): a slow upload, a slow download or a client dripping its headers
holds one thread, not a whole worker, so 2 workers x 16 threads keep answering polls while
up to 32 such clients are connected (behind nginx, which buffers bodies and headers, none
reach gunicorn at all). Django keeps one database connection per thread: size PostgreSQL's
max_connections for WEB_CONCURRENCY x GUNICORN_THREADS per host (docs/operations.md: Database
connections).
"""

import os
import sys


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"gunicorn.conf.py: {name} must be an integer, got {value!r}") from None


bind = [
    address.strip()
    for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
    if address.strip()
]
wsgi_app = "molecule.wsgi:application"
worker_class = "gthread"
workers = _env_int("WEB_CONCURRENCY", 2)
threads = _env_int("GUNICORN_THREADS", 16)
# With threads the worker's heartbeat comes from its main loop, so this only kills a worker
# whose main loop is stuck; it does not cut off a slow request.
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Heartbeat files on tmpfs: a container's overlay filesystem can stall the heartbeat.
if os.path.isdir("/dev/shm"):  # noqa: S108 (a directory gunicorn creates its own files in)
    worker_tmp_dir = "/dev/shm"  # noqa: S108
# gunicorn >= 25 binds a control socket at one fixed path per user; two instances on one
# host (web plus a bench, tests) would fight over it. Older versions ignore this name.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") not in {"1", "on", "true"}
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None

# nginx refuses oversized request lines and headers first, with JSON (deploy/nginx:
# large_client_header_buffers 4 8k). gunicorn's own refusals are HTML, so its limits sit at or
# above anything nginx passes on; below them they only stop a client that bypasses nginx.
# gunicorn's maximum, and nginx's: one 8 KiB buffer holds the line and its CRLF.
limit_request_line = 8190
# One 8 KiB header line, plus what nginx adds to it (X-Forwarded-For gains ", <address>").
limit_request_field_size = 16384
# 4 x 8 KiB of the shortest header lines ("a:" and CRLF), plus the few nginx sets itself.
limit_request_fields = 8200


def when_ready(server) -> None:  # server: gunicorn's Arbiter
    server.log.info(
        "gthread: %d workers x %d threads; up to %d database connections from this server",
        server.cfg.workers,
        server.cfg.threads,
        server.cfg.workers * server.cfg.threads,
    )
    # Read through the app's conf, after on_starting checked the settings.
    from pending_uploads import conf

    cap = conf.forward_max_concurrent()
    server.log.info(
        "push forwards: up to %d per worker, %d from this server; more get 503",
        cap,
        cap * server.cfg.workers,
    )
    if cap >= server.cfg.threads:
        server.log.warning(
            "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT (%d) is not below the %d threads per "
            "worker: forwards to slow workspaces can hold every thread and stall polls",
            cap,
            server.cfg.threads,
        )


def on_starting(server: object) -> None:
    """Refuse to start, in one line, when the settings are wrong: before any worker forks.

    Left to the workers, each one fails alone and gunicorn's master, reaping two at once,
    prints its own traceback.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "molecule.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 - importing the settings is the check
    except ImproperlyConfigured as exc:
        sys.exit(f"configuration error: {exc}")
