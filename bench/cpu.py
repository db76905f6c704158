"""Where a poll's time goes: CPU per request, in this process and in its PostgreSQL backend.

Each variant answers the runtime's poll in this one process, called as WSGI (no HTTP, no
gunicorn: those cost every variant the same), back to back on one connection. The process's
CPU time (time.process_time) is the Python side; the backend's (its /proc/<pid>/stat, when
PostgreSQL runs on this host) is the database's. Variants: the service as it ships; the
service with every request through the whole middleware stack, as before the API had a chain
of its own; the service with the cache prototype (bench.cached_poll, no database at all); and
the floor (bench.floor). CPU time, unlike a rate, hardly moves with the load of the machine.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.config import Scale
from bench.database import BenchDatabases
from bench.throughput import PAGE_ROWS, SEED_ACTIVITY_SQL, SEED_WORKSPACE_SQL

logger = logging.getLogger("bench")

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
WARM_UP = 200
ROUTER = "molecule.middleware.ApiRoutingMiddleware"


def _backend_cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a PostgreSQL backend on this host, or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Poller:
    """The runtime's poll of one workspace, sent as a WSGI call."""

    def __init__(self, workspace: uuid.UUID, token: str) -> None:
        self.workspace = workspace
        self.token = token

    def environ(self, since_id: int) -> dict[str, Any]:
        return {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/workspaces/{self.workspace}/activity",
            "QUERY_STRING": f"type=a2a_receive&include=peer_info&since_id={since_id}",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b""),
            "HTTP_AUTHORIZATION": f"Bearer {self.token}",
        }

    def call(self, app: App, since_id: int) -> bytes:
        status: list[str] = []
        body = app(self.environ(since_id), lambda line, headers: status.append(line))
        data = b"".join(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
        if not status[0].startswith("200"):
            raise RuntimeError(f"poll answered {status[0]}: {data[:200]!r}")
        return data

    def measure(self, app: App, since_id: int, count: int, backend: Callable[[], Any]) -> dict:
        for _ in range(WARM_UP):
            self.call(app, since_id)
        pid = backend()
        before = _backend_cpu_seconds(pid)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            self.call(app, since_id)
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


def bench_cpu(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    from bench import cached_poll, floor

    db.fresh()
    workspace, token = uuid.uuid4(), uuid.uuid4().hex * 2
    with db.connect() as conn:
        digest = hashlib.sha256(token.encode()).hexdigest()
        conn.execute(SEED_WORKSPACE_SQL, [workspace, "cpu", digest])
        seeded = conn.execute(SEED_ACTIVITY_SQL, {"workspace": workspace, "rows": PAGE_ROWS})
        ids = sorted(row[0] for row in seeded.fetchall())
    poller = Poller(workspace, token)
    polls = {"head_poll": ids[-1], "page_poll": ids[0]}
    with override_settings(MIDDLEWARE=[path for path in settings.MIDDLEWARE if path != ROUTER]):
        whole_stack = WSGIHandler()
    variants: list[tuple[str, App, Callable[[], Any]]] = [
        ("service", WSGIHandler(), _service_backend),
        ("whole_stack", whole_stack, _service_backend),
        ("floor", floor.application, lambda: floor.connection().info.backend_pid),
    ]
    figure: dict[str, Any] = {}
    for name, app, backend in variants:
        figure[name] = {
            poll: poller.measure(app, since_id, scale.cpu_requests, backend)
            for poll, since_id in polls.items()
        }
        logger.info("cpu %s: %s", name, figure[name])
    with cached_poll.cached_feed():
        figure["prototype"] = {
            "head_poll": poller.measure(
                WSGIHandler(), polls["head_poll"], scale.cpu_requests, lambda: None
            )
        }
    logger.info("cpu prototype: %s", figure["prototype"])
    # The same JSON from each: they did the same work.
    answers = {poller.call(app, ids[0]) for _, app, _ in variants}
    figure["same_answer"] = len(answers) == 1
    figure["requests"] = scale.cpu_requests
    return {"cpu": figure}
