"""Run one command with DATABASE_URL set, starting the embedded PostgreSQL when it is not.

    python -m devtools.withdb [--scratch] [--dev] -- COMMAND [ARGS...]

Without DATABASE_URL, the server runs on MOLECULE_EMBEDDED_PG_DIR (default ./.data/postgres),
or with --scratch in a temporary directory removed afterwards. A server this process started
is stopped when the command ends, however it ends; one that was running already is left be.
--dev adds bin/run's environment (DEBUG, secret key, metrics directory). bin/test and
bin/manage are this module.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from devtools.devenv import dev_environment, embedded_pg_dir
from devtools.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError


@contextlib.contextmanager
def database_environment(env: dict[str, str], *, scratch: bool = False) -> Iterator[dict[str, str]]:
    """``env`` with DATABASE_URL; starts (and afterwards stops) an embedded server if unset."""
    if env.get("DATABASE_URL"):
        yield env
        return
    scratch_dir = Path(tempfile.mkdtemp(prefix="molecule-pg.")) if scratch else None
    if scratch_dir is not None:
        # The server may run as another user (pgserver's, when root), who must reach it.
        scratch_dir.chmod(0o755)
    server = EmbeddedPostgres(scratch_dir / "data" if scratch_dir else embedded_pg_dir(env))
    try:
        yield {**env, "DATABASE_URL": server.start()}
    finally:
        if server.started:
            server.stop()
        if scratch_dir is not None:
            shutil.rmtree(scratch_dir, ignore_errors=True)


def run_command(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` in this process group and return its exit code.

    Ctrl-C reaches the command straight from the terminal, so this process ignores it and
    only waits; a SIGTERM sent here is passed on.
    """
    process = subprocess.Popen(command, env=env)
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(
        signal.SIGTERM, lambda signum, frame: process.send_signal(signal.SIGTERM)
    )
    try:
        code = process.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
    # A command killed by a signal exits as a shell reports it: 128 + the signal number.
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.withdb")
    parser.add_argument("--scratch", action="store_true", help="throwaway server in a temp dir")
    parser.add_argument("--dev", action="store_true", help="bin/run's dev environment")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    if not command:
        parser.error("no command given")
    env = dev_environment() if options.dev else dict(os.environ)
    if options.dev:
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    try:
        with database_environment(env, scratch=options.scratch) as full_env:
            return run_command(command, full_env)
    except EmbeddedPostgresError as exc:
        print(f"[molecule] {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
