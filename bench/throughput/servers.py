"""The sides: each app under gunicorn with gunicorn.conf.py's settings, on one database."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench import loadgen
from bench.config import Scale
from bench.database import BenchDatabases

SIDES = ("service", "floor")
PROTOTYPE = "prototype"
APPS = {
    "service": ("molecule.wsgi:application", "/metrics"),
    "floor": ("bench.floor.app:application", "/ready"),
    PROTOTYPE: ("bench.cached_poll:application", "/metrics"),
}


def get(port: int, path: str, token: str) -> bytes:
    conn = loadgen.http_session(port)()
    try:
        return loadgen.http_call(conn, "GET", path, headers={"Authorization": f"Bearer {token}"})
    finally:
        conn.close()


@contextlib.contextmanager
def servers(db: BenchDatabases, scale: Scale) -> Iterator[dict[str, int]]:
    """Every app of APPS under the same gunicorn settings, on one fresh database: their ports."""
    from devtools.processes import ServiceStack

    db.fresh()
    scratch = Path(tempfile.mkdtemp(prefix="molecule-bench-throughput."))
    stacks = {
        name: ServiceStack(
            database_url=db.url,
            metrics_dir=scratch / f"{name}-metrics",
            web_workers=2,
            log_dir=scratch / name,
            wsgi_app=app,
            ready_path=ready,
            extra_env={"GUNICORN_THREADS": str(scale.throughput_threads)},
        )
        for name, (app, ready) in APPS.items()
    }
    try:
        for stack in stacks.values():
            stack.start(web=True, qcluster=False)
        yield {name: stack.port for name, stack in stacks.items()}
    finally:
        for stack in stacks.values():
            stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)
