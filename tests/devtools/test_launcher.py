"""The run command: its setup steps, Ctrl-C, and the refusals, with real child processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from devtools import launcher
from devtools.devenv import BASE_DIR
from devtools.processes import free_port, process_descendants
from devtools.processes.stack import QCLUSTER_RUNNING
from tests.helpers import current_database_url, run_module
from tests.integration.conftest import HANG_TIMEOUT, wait_until


@pytest.mark.django_db(transaction=True)
def test_admin_login_is_created_once_and_reused(capsys) -> None:
    env = {**os.environ, "DATABASE_URL": current_database_url(), "DEBUG": "1"}

    launcher._ensure_admin(env)
    first = capsys.readouterr().out
    launcher._ensure_admin(env)
    second = capsys.readouterr().out

    assert "created admin login: admin / " in first
    assert "admin login exists" in second
    assert "created admin login" not in second
    assert get_user_model().objects.filter(username="admin", is_superuser=True).count() == 1


# --- the run command as a real process tree ---------------------------------------------------

QCLUSTER_STOPPING = re.compile(r"Q Cluster \S+ stopping\.")


def launcher_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("COV_CORE_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        {
            "DATABASE_URL": current_database_url(),
            "DEBUG": "1",
            # Away from the checkout's .data: its key, lock and metrics stay untouched.
            "MOLECULE_DATA_DIR": str(tmp_path / "data"),
            "MOLECULE_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def launcher_start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        # Its own session, as a terminal gives a foreground job its own process group.
        return subprocess.Popen(
            [sys.executable, "-m", "devtools.launcher"],
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    launcher = launcher_start(launcher_env(tmp_path, free_port()), log)
    try:
        wait_until(
            lambda: "press Ctrl-C" in log.read_text() and QCLUSTER_RUNNING.search(log.read_text()),
            timeout=60,
            what=lambda: log.read_text()[-3000:],
        )
        tree = process_descendants(launcher.pid)
        assert len(tree) >= 4, tree  # gunicorn master and workers, qcluster and its children
        # What a terminal does on Ctrl-C: SIGINT to the foreground process group.
        os.killpg(launcher.pid, signal.SIGINT)
        code = launcher.wait(timeout=HANG_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert [pid for pid in tree if alive(pid)] == []
    assert "Traceback" not in text, text[-3000:]
    assert len(QCLUSTER_STOPPING.findall(text)) == 1, text[-3000:]


def test_a_busy_port_fails_in_one_line_before_touching_anything(tmp_path: Path) -> None:
    metrics = tmp_path / "data" / "prometheus"
    metrics.mkdir(parents=True)
    (metrics / "counter_1.db").write_bytes(b"the first run's counts")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_module("devtools.launcher", env=launcher_env(tmp_path, busy.getsockname()[1]))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "is in use" in lines[0]
    assert "MOLECULE_PORT" in lines[0]
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == ["counter_1.db", "prometheus"]


def test_a_second_run_in_one_checkout_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with (tmp_path / "data" / "run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("4242")
        lock.flush()
        result = run_module("devtools.launcher", env=launcher_env(tmp_path, free_port()))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "[molecule] bin/run already runs in this checkout (pid 4242)"
    ]
    assert not (tmp_path / "data" / "prometheus").exists()
