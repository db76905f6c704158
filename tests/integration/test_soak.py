"""A 15-second soak (python -m soak), against the PostgreSQL server of this test run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.db import connection

from devtools.processes import database_url_from_settings
from soak.config import CHECK_NAMES
from tests.helpers import run_module

EXPECTED_CHECKS = set(CHECK_NAMES)
# The soak's defaults (20 s TTL, 5 s ack retention, a sweep every 5 s) scaled down to a 15 s run
# that still outlives one TTL, so that some never-fetched uploads expire and are swept.
SHORT_SOAK = ("--minutes", "0.25", "--ttl", "8", "--retention", "3", "--interval", "3")

pytestmark = pytest.mark.slow


def test_a_short_soak_passes_every_check(tmp_path: Path) -> None:
    settings_dict = connection.settings_dict
    # The server of this run, not its test database: the script creates (and drops) its own,
    # named after ours so that parallel runs on one server do not collide.
    server_url = database_url_from_settings({**settings_dict, "NAME": "postgres"})
    database_name = f"soak_{settings_dict['NAME']}"[:63]
    env = {**os.environ, "DATABASE_URL": server_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)

    completed = run_module(
        "soak",
        *SHORT_SOAK,
        "--json",
        "--database-name",
        database_name,
        "--log-dir",
        str(tmp_path / "logs"),
        env=env,
        timeout=240,
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
    # The run the options asked for, sweeping as often as they said.
    assert (figures["minutes"], figures["ttl_seconds"]) == (0.25, 8)
    assert figures["ack_retention_seconds"] == figures["sweep_interval_seconds"] == 3
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
