"""devtools.withdb (bin/manage, bin/test): the environment it passes, and what it stops."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.devenv import BASE_DIR
from devtools.processes import free_port, http_get, process_children
from tests.integration.conftest import HANG_TIMEOUT, wait_until

PRINT_ENV = (
    "import os; print(os.environ['DATABASE_URL']); print(os.environ['SECRET_KEY']);"
    "print(os.environ['PROMETHEUS_MULTIPROC_DIR']); print(os.environ['DEBUG'])"
)


def withdb(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "devtools.withdb", *args],
        cwd=BASE_DIR,
        env=env,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


def test_dev_environment_is_bin_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://db.invalid/x",
        "MOLECULE_DATA_DIR": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("SECRET_KEY", None)
    env.pop("DEBUG", None)
    outputs = []
    for _ in range(2):
        process = withdb(
            "--dev", "--", sys.executable, "-c", PRINT_ENV, env=env, stdout=subprocess.PIPE
        )
        outputs.append(process.communicate(timeout=30)[0].splitlines())
        assert process.returncode == 0
    # The same key both times, the one bin/run keeps; the same metrics directory, created.
    assert outputs[0] == outputs[1]
    url, key, metrics, debug = outputs[0]
    assert url == "postgres://db.invalid/x"
    assert key == (tmp_path / "secret_key").read_text().strip()
    assert metrics == str(tmp_path / "prometheus")
    assert (tmp_path / "prometheus").is_dir()
    assert debug == "1"


def test_the_exit_code_is_the_commands(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": "postgres://db.invalid/x"}
    process = withdb("--", sys.executable, "-c", "raise SystemExit(7)", env=env)
    assert process.wait(timeout=30) == 7


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    # Not under tmp_path: the server may run as pgserver's own user, who must reach it.
    scratch = Path(tempfile.mkdtemp(prefix="molecule-test-withdb."))
    scratch.chmod(0o755)
    yield scratch / "pg"
    shutil.rmtree(scratch, ignore_errors=True)


def serving(url: str) -> bool:
    try:
        return http_get(url, timeout=2)[0] == 200
    except OSError:
        return False


def postmaster_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


@pytest.mark.slow
def test_a_killed_command_does_not_leave_the_server_it_needed(tmp_path: Path, pg_dir: Path) -> None:
    env = {
        **os.environ,
        "MOLECULE_EMBEDDED_PG_DIR": str(pg_dir),
        "MOLECULE_DATA_DIR": str(tmp_path / "data"),
    }
    for name in ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "SECRET_KEY", "DEBUG"):
        env.pop(name, None)
    port = free_port()
    wrapper = withdb(
        "--dev",
        "--",
        sys.executable,
        "manage.py",
        "runserver",
        "--noreload",
        f"127.0.0.1:{port}",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: postmaster_pid(pg_dir) and serving(f"http://127.0.0.1:{port}/"),
            timeout=60,
            what="runserver on the embedded server",
        )
        server = postmaster_pid(pg_dir)
        (command,) = process_children(wrapper.pid)
        os.kill(command, signal.SIGKILL)
        assert wrapper.wait(timeout=HANG_TIMEOUT) == 128 + signal.SIGKILL
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    assert server is not None
    wait_until(
        lambda: postmaster_pid(pg_dir) is None, timeout=HANG_TIMEOUT, what="the postmaster to stop"
    )
    assert "Traceback" not in wrapper.stderr.read()
