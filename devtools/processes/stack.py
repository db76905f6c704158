"""gunicorn plus qcluster as real processes: the run command, integration tests, bench, soak."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from devtools.processes.commands import (
    BASE_DIR,
    Lifecycle,
    gunicorn_command,
    qcluster_command,
    reset_metrics_dir,
    stop_processes,
)
from devtools.processes.probes import free_port, http_get
from devtools.processes.procfs import process_children, process_descendants

LOG_TAIL_LINES = 60
# What django-q2 logs once its sentinel has started the workers, pusher and monitor.
QCLUSTER_RUNNING = re.compile(r"Q Cluster .+ running\.")

# Stacks still running when the interpreter exits (a test run aborted with Ctrl-C).
_running: weakref.WeakSet[ServiceStack] = weakref.WeakSet()


class ServiceStack(Lifecycle):
    """gunicorn plus N qcluster processes sharing one database and one metrics directory.

    ``web_workers=None`` leaves the count to gunicorn.conf.py (WEB_CONCURRENCY). ``wsgi_app``
    and ``ready_path`` let the bench run its floor under the same gunicorn settings.
    """

    def __init__(
        self,
        *,
        database_url: str,
        metrics_dir: Path,
        port: int | None = None,
        web_workers: int | None = 2,
        qclusters: int = 1,
        extra_env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        wsgi_app: str = "molecule.wsgi:application",
        ready_path: str = "/metrics",
    ) -> None:
        self.database_url = database_url
        self.metrics_dir = Path(metrics_dir)
        self.port = port or free_port()
        self.web_workers = web_workers
        self.qclusters = qclusters
        self.extra_env = dict(extra_env or {})
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.wsgi_app = wsgi_app
        self.ready_path = ready_path
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env: dict[str, str] = {}
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: dict[str, Path] = {}
        self._log_files: list[Any] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(
        self, *, web: bool = True, qcluster: bool = True, timeout: float = 30.0
    ) -> ServiceStack:
        """Start the processes and wait until they serve; RuntimeError (with logs) otherwise."""
        if self.web is not None or self.workers:
            raise RuntimeError("this ServiceStack is already started")
        if self.log_dir is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="molecule-stack-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        reset_metrics_dir(self.metrics_dir)
        self.env = self._environment()
        _running.add(self)
        try:
            if web:
                self.web = self._spawn(
                    "gunicorn",
                    gunicorn_command(f"127.0.0.1:{self.port}", self.web_workers, self.wsgi_app),
                )
            if qcluster:
                for number in range(self.qclusters):
                    self.workers.append(self._spawn(f"qcluster-{number}", qcluster_command()))
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every process, wait up to 15 s, then SIGKILL what is left; idempotent."""
        processes = [p for p in [self.web, *self.workers] if p is not None]
        stop_processes(processes)
        for process in processes:
            # Each process leads its own group, which also holds its workers: kill stragglers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for handle in self._log_files:
            handle.close()
        self._log_files.clear()
        self.web = None
        self.workers = []
        _running.discard(self)

    # --- inspection ------------------------------------------------------------------------

    def pids(self) -> dict[str, list[int]]:
        """Live process ids: gunicorn master and its workers, qcluster processes and children."""
        master = [self.web.pid] if self.web is not None and self.web.poll() is None else []
        workers = process_children(master[0]) if master else []
        qcluster: list[int] = []
        for process in self.workers:
            if process.poll() is None:
                qcluster.append(process.pid)
                qcluster.extend(process_descendants(process.pid))
        return {"gunicorn_master": master, "gunicorn_workers": workers, "qcluster": qcluster}

    def log_text(self) -> str:
        """Every process log, concatenated with a header per process."""
        parts = []
        for name, path in self._logs.items():
            try:
                text = path.read_text(errors="replace")
            except OSError:
                text = ""
            parts.append(f"===== {name} ({path}) =====\n{text}")
        return "\n".join(parts)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        parts = []
        for name, path in self._logs.items():
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            parts.append(f"===== {name} (last {lines} lines) =====\n" + "\n".join(text))
        return "\n".join(parts)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def metrics_text(self, *, timeout: float = 10.0) -> str:
        """One scrape of the web /metrics (with METRICS_TOKEN when the stack sets one)."""
        status, _, body = http_get(
            self.url("/metrics"), token=self.extra_env.get("METRICS_TOKEN"), timeout=timeout
        )
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}: {body[:200]!r}")
        return body.decode()

    # --- internals -------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # Coverage hooks of the parent test run must not follow into the services.
        for key in [k for k in env if k.startswith("COV_CORE_")]:
            del env[key]
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "molecule.settings",
                "DEBUG": "0",
                "SECRET_KEY": secrets.token_urlsafe(50),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self.database_url,
                "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        assert self.log_dir is not None
        path = self.log_dir / f"{name}.log"
        handle = path.open("wb")
        self._log_files.append(handle)
        self._logs[name] = path
        return subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            # Its own process group, so stop() can kill workers an ungraceful exit leaves.
            start_new_session=True,
        )

    def _check_alive(self) -> None:
        for name, process in self._named_processes():
            code = process.poll()
            if code is not None:
                raise RuntimeError(f"{name} exited with code {code}\n{self.log_tail()}")

    def _named_processes(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        named = [("gunicorn", self.web)] if self.web is not None else []
        named += [(f"qcluster-{n}", p) for n, p in enumerate(self.workers)]
        return named

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        web_ready = self.web is None
        workers_ready = [False] * len(self.workers)
        while not (web_ready and all(workers_ready)):
            self._check_alive()
            if not web_ready:
                with contextlib.suppress(OSError):
                    status, _, _ = http_get(
                        self.url(self.ready_path),
                        token=self.extra_env.get("METRICS_TOKEN"),
                        timeout=2,
                    )
                    web_ready = status == 200
            for number in range(len(self.workers)):
                if not workers_ready[number]:
                    with contextlib.suppress(OSError):
                        text = self._logs[f"qcluster-{number}"].read_text(errors="replace")
                        workers_ready[number] = bool(QCLUSTER_RUNNING.search(text))
            if web_ready and all(workers_ready):
                return
            if time.monotonic() > deadline:
                waiting = [] if web_ready else [f"gunicorn {self.ready_path}"]
                waiting += [f"qcluster-{n}" for n, ok in enumerate(workers_ready) if not ok]
                raise RuntimeError(
                    f"not ready within {timeout:.0f} s: {', '.join(waiting)}\n{self.log_tail()}"
                )
            time.sleep(0.2)


@atexit.register
def _stop_leftovers() -> None:
    for stack in list(_running):
        stack.stop()
