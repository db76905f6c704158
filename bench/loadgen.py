"""A small closed-loop load generator: N threads, each with its own keep-alive connection.

The same driver runs HTTP requests against gunicorn and raw psycopg operations, so both
sides of each API : raw ratio are measured the same way.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from bench.database import BenchDatabases

BOUNDARY = "molecule-bench-boundary"


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    first_error: str = ""
    results: list[Any] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        from bench.stats import percentile

        done = len(self.latencies_ms)
        return {
            "requests": done,
            "seconds": round(self.seconds, 3),
            "rps": done / self.seconds if self.seconds else None,
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "errors": self.errors,
        }


def drive(
    open_session: Callable[[], Any],
    close_session: Callable[[Any], None],
    operation: Callable[[Any, int], Any],
    *,
    count: int,
    concurrency: int,
    seconds: float,
) -> Load:
    """Run ``operation(session, n)`` for n in 0..count-1 on ``concurrency`` threads.

    Stops after ``count`` operations or ``seconds``, whichever comes first. An operation
    that raises counts as an error; its session is reopened.
    """
    load = Load()
    lock = threading.Lock()
    numbers = iter(range(count))
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        session = open_session()
        try:
            while time.perf_counter() < deadline:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                started = time.perf_counter()
                try:
                    result = operation(session, number)
                except Exception as exc:
                    with lock:
                        load.errors += 1
                        load.first_error = load.first_error or repr(exc)
                    close_session(session)
                    session = open_session()
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    load.latencies_ms.append(elapsed)
                    if result is not None:
                        load.results.append(result)
        finally:
            close_session(session)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.seconds = time.perf_counter() - started
    return load


@contextlib.contextmanager
def served(db: BenchDatabases, name: str, web_workers: int = 2) -> Iterator[int]:
    """gunicorn alone (no qcluster) on a fresh working database; yields its port. Its logs and
    metrics live in a scratch directory that goes with it."""
    from devtools.processes import ServiceStack

    db.fresh()
    scratch = Path(tempfile.mkdtemp(prefix=f"molecule-bench-{name}."))
    stack = ServiceStack(
        database_url=db.url,
        metrics_dir=scratch / "metrics",
        web_workers=web_workers,
        log_dir=scratch,
    )
    stack.start(web=True, qcluster=False)
    try:
        yield stack.port
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


class HttpError(Exception):
    pass


def http_session(port: int) -> Callable[[], http.client.HTTPConnection]:
    return lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=120)


def http_close(conn: http.client.HTTPConnection) -> None:
    conn.close()


def http_call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One request on ``conn`` (reconnecting when the server closed it); the body on 200."""
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise HttpError(f"{method} {path} -> {response.status}: {data[:200]!r}")
    return data


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one part named ``files``, and its content type."""
    return multipart_files([(filename, "application/octet-stream", content)])


def multipart_files(files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A body with one ``files`` part per (filename, mimetype, bytes), and its content type."""
    parts = [
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
        f"Content-Type: {mimetype}\r\n\r\n".encode()
        + content
        + b"\r\n"
        for filename, mimetype, content in files
    ]
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def register_workspace(port: int, name: str = "bench") -> tuple[uuid.UUID, str]:
    """Register a poll-mode workspace through the API; return its id and bearer token."""
    workspace_id = uuid.uuid4()
    payload = {"id": str(workspace_id), "delivery_mode": "poll", "agent_card": {"name": name}}
    conn = http_session(port)()
    try:
        data = http_call(
            conn,
            "POST",
            "/registry/register",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
    finally:
        conn.close()
    return workspace_id, json.loads(data)["auth_token"]


def file_ids(upload_response: bytes) -> list[uuid.UUID]:
    """The file ids in an upload answer (uri is platform-pending:<workspace>/<file_id>)."""
    files = json.loads(upload_response)["files"]
    return [uuid.UUID(item["uri"].rsplit("/", 1)[1]) for item in files]


def pg_session(url: str) -> Callable[[], psycopg.Connection]:
    return lambda: psycopg.connect(url, autocommit=True)


def pg_close(conn: psycopg.Connection) -> None:
    conn.close()
