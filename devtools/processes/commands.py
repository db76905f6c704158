"""The service's commands as argv lists, running manage.py, and stopping what they started."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

BASE_DIR = Path(__file__).resolve().parent.parent.parent
STOP_GRACE_SECONDS = 15.0


def gunicorn_command(
    bind: str, workers: int | None = None, app: str = "molecule.wsgi:application"
) -> list[str]:
    """argv for gunicorn with the repository's gunicorn.conf.py (read from the working directory).

    ``workers`` overrides WEB_CONCURRENCY for harnesses that need an exact count; the short
    graceful timeout keeps stops quick when a test leaves a slow client connected. ``app``
    is the WSGI application (the bench's floor runs under the same settings).
    """
    worker_args = ["--workers", str(workers)] if workers is not None else []
    return [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--bind",
        bind,
        *worker_args,
        "--graceful-timeout",
        "5",
    ]


def manage_command(*args: str) -> list[str]:
    """argv for ``manage.py <args>`` with this interpreter, whatever the working directory."""
    return [sys.executable, str(BASE_DIR / "manage.py"), *args]


def qcluster_command() -> list[str]:
    return manage_command("qcluster")


def reset_metrics_dir(path: Path) -> None:
    """Empty the multiprocess metrics directory, once, before any writer starts.

    Wiping it under a running writer would lose that writer's counts.
    """
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def stop_processes(
    processes: list[subprocess.Popen[Any]],
    grace: float = STOP_GRACE_SECONDS,
    signals: list[int] | None = None,
) -> None:
    """Signal each process once (SIGTERM unless ``signals`` says otherwise, one per process),
    wait up to ``grace`` seconds in all, then SIGKILL what is left."""
    for process, sig in zip(processes, signals or [signal.SIGTERM] * len(processes), strict=True):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
    deadline = time.monotonic() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(deadline - time.monotonic(), 0.1))
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_captured(
    argv: list[str],
    *,
    env: dict[str, str],
    timeout: float | None = None,
    check: bool = False,
    new_session: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` from the checkout with ``env``, its output captured as text."""
    return subprocess.run(
        argv,
        env=env,
        cwd=BASE_DIR,
        check=check,
        text=True,
        capture_output=True,
        start_new_session=new_session,
        timeout=timeout,
    )


def run_manage(
    env: dict[str, str], *args: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py <args>`` with ``env``; CalledProcessError on failure.

    In a session of its own, so the terminal's Ctrl-C reaches only the caller, which stops it.
    """
    return run_captured(
        manage_command(*args), env=env, timeout=timeout, check=True, new_session=True
    )


class Lifecycle:
    """A harness used as ``with harness:``: start() on entry, stop() on exit, errors included."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
