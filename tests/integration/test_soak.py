"""The soak's one-minute run (python -m soak), against the PostgreSQL server of this test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from devtools.processes import database_url_from_settings
from soak.config import CHECK_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_CHECKS = set(CHECK_NAMES)

pytestmark = pytest.mark.slow


def test_one_minute_soak_passes_every_check(tmp_path: Path) -> None:
    settings_dict = connection.settings_dict
    # The server of this run, not its test database: the script creates (and drops) its own,
    # named after ours so that parallel runs on one server do not collide.
    server_url = database_url_from_settings({**settings_dict, "NAME": "postgres"})
    database_name = f"soak_{settings_dict['NAME']}"[:63]
    env = {**os.environ, "DATABASE_URL": server_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "soak",
            "--minutes",
            "1",
            "--json",
            "--database-name",
            database_name,
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    # --json prints exactly one line on stdout; progress goes to stderr.
    lines = completed.stdout.splitlines()
    assert len(lines) == 1, completed.stdout + completed.stderr[-3000:]
    summary = json.loads(lines[0])
    assert completed.returncode == 0, summary["failures"]
    assert summary["passed"] is True
    assert summary["failures"] == []
    assert set(summary["checks"]) == EXPECTED_CHECKS
    assert all(check["passed"] for check in summary["checks"].values())
    figures = summary["figures"]
    # The run did real work: uploads flowed, some were swept as acked and some as expired.
    assert figures["uploads_created"] > 0
    assert figures["swept_acked"] > 0
    assert figures["swept_expired"] > 0
    assert (
        figures["swept_acked"] + figures["swept_expired"] + figures["rows_left"]
        == (figures["uploads_created"])
    )
    assert {p["role"] for p in figures["processes"]} == {
        "gunicorn_master",
        "gunicorn_workers",
        "qcluster",
    }
