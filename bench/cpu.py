"""Where a request's time goes: CPU in this process and in its PostgreSQL backend.

Each variant answers the request in this one process, called as WSGI (no HTTP, no gunicorn:
those cost every variant the same), back to back on one connection. The process's CPU time
(time.process_time) is the Python side; the backend's (its /proc/<pid>/stat, when PostgreSQL
runs on this host) is the database's. For the runtime's poll, at the head and one page behind:
the service as it ships; the service with every request through the whole middleware stack,
as before the API had a chain of its own; the service with the cache prototype
(bench.cached_poll, no database at all); and the floor (bench.floor). For the large file, up
and down: the service and the floor. CPU time, unlike a rate, hardly moves with the load of
the machine. This process runs without PROMETHEUS_MULTIPROC_DIR, so django-prometheus' metrics
cost less here than in gunicorn.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.api import payload
from bench.config import Scale
from bench.database import BenchDatabases
from bench.throughput.seed import PAGE_ROWS, SEED_ACTIVITY_SQL, make_workspaces

logger = logging.getLogger("bench")

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Environ = Callable[[], dict[str, Any]]
WARM_UP = 200
ROUTER = "molecule.middleware.ApiRoutingMiddleware"


def _backend_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a PostgreSQL backend on this host, or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client:
    """One workspace's requests, sent as WSGI calls."""

    def __init__(self, workspace: uuid.UUID, token: str) -> None:
        self.workspace = workspace
        self.token = token

    def environ(self, method: str, path: str, query: str = "", body: bytes = b"") -> Environ:
        def make() -> dict[str, Any]:
            return {
                "REQUEST_METHOD": method,
                "PATH_INFO": f"/workspaces/{self.workspace}/{path}",
                "QUERY_STRING": query,
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000",
                "HTTP_HOST": "127.0.0.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
                "CONTENT_LENGTH": str(len(body)),
                "CONTENT_TYPE": f"multipart/form-data; boundary={loadgen.BOUNDARY}",
                "HTTP_AUTHORIZATION": f"Bearer {self.token}",
            }

        return make

    def poll(self, since_id: int) -> Environ:
        query = f"type=a2a_receive&include=peer_info&since_id={since_id}"
        return self.environ("GET", "activity", query)

    @staticmethod
    def call(app: App, environ: Environ) -> bytes:
        status: list[str] = []
        body = app(environ(), lambda line, headers: status.append(line))
        data = b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
        if not status[0].startswith("200"):
            raise RuntimeError(f"answered {status[0]}: {data[:200]!r}")
        return data


def measure(
    app: App, environ: Environ, count: int, backend: Callable[[], Any], *, warm_up: int = WARM_UP
) -> dict[str, Any]:
    """CPU and wall time per request, after ``warm_up`` requests (which also connect)."""
    for _ in range(max(warm_up, 1)):
        Client.call(app, environ)
    pid = backend()
    before = _backend_cpu_seconds(pid)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        Client.call(app, environ)
    client = (time.process_time() - cpu) / count
    wall = (time.perf_counter() - started) / count
    after = _backend_cpu_seconds(pid)
    database = None if before is None or after is None else (after - before) / count
    return {
        "client_cpu_us": round(client * 1e6, 1),
        "backend_cpu_us": None if database is None else round(database * 1e6, 1),
        "wall_us": round(wall * 1e6, 1),
    }


def _service_backend() -> int | None:
    from django.db import connection

    return connection.connection.info.backend_pid if connection.connection else None


def _floor_backend() -> int:
    from bench.floor.wire import connection

    return connection().info.backend_pid


def _workspace(db: BenchDatabases, name: str) -> Client:
    [(workspace, token)] = make_workspaces(db, 1, name)
    return Client(workspace, token)


def bench_cpu(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    from bench import cached_poll
    from bench.floor.app import application as floor_app

    db.fresh()
    poller = _workspace(db, "cpu")
    with db.connect() as conn:
        seeded = conn.execute(SEED_ACTIVITY_SQL, {"workspace": poller.workspace, "rows": PAGE_ROWS})
        ids = sorted(row[0] for row in seeded.fetchall())
    polls = {"head_poll": poller.poll(ids[-1]), "page_poll": poller.poll(ids[0])}
    service = WSGIHandler()
    with override_settings(MIDDLEWARE=[path for path in settings.MIDDLEWARE if path != ROUTER]):
        whole_stack = WSGIHandler()
    variants: list[tuple[str, App, Callable[[], Any]]] = [
        ("service", service, _service_backend),
        ("whole_stack", whole_stack, _service_backend),
        ("floor", floor_app, _floor_backend),
    ]
    figure: dict[str, Any] = {}
    for name, app, backend in variants:
        figure[name] = {
            poll: measure(app, environ, scale.cpu_requests, backend)
            for poll, environ in polls.items()
        }
        logger.info("cpu %s: %s", name, figure[name])
    with cached_poll.cached_feed():
        head = measure(WSGIHandler(), polls["head_poll"], scale.cpu_requests, lambda: None)
    figure["prototype"] = {"head_poll": head}
    logger.info("cpu prototype: %s", figure["prototype"])
    # The same JSON from each: they did the same work.
    figure["same_answer"] = (
        len({Client.call(app, polls["page_poll"]) for _, app, _ in variants}) == 1
    )
    figure["requests"] = scale.cpu_requests
    figure["large_file"] = _large_file(db, scale, {"service": service, "floor": floor_app})
    return {"cpu": figure}


def _large_file(db: BenchDatabases, scale: Scale, apps: dict[str, App]) -> dict[str, Any]:
    """The large file up, then down, through the service and the floor: CPU per request."""
    size = scale.throughput_file_bytes
    body, _ = loadgen.multipart("big.bin", payload(size))
    backends = {"service": _service_backend, "floor": _floor_backend}
    found: dict[str, Any] = {"file_mib": size / (1024 * 1024)}
    for name, app in apps.items():
        client = _workspace(db, f"cpu-large-{name}")
        upload = client.environ("POST", "chat/uploads", body=body)
        reps = scale.throughput_file_reps
        found[name] = {"upload": measure(app, upload, reps, backends[name], warm_up=1)}
        [file_id] = loadgen.file_ids(Client.call(app, upload))
        fetch = client.environ("GET", f"pending-uploads/{file_id}/content")
        found[name]["fetch"] = measure(app, fetch, reps, backends[name], warm_up=1)
        with db.connect() as conn:
            conn.execute("DELETE FROM pending_uploads WHERE workspace_id = %s", [client.workspace])
        logger.info("cpu large file %s: %s", name, found[name])
    return found
