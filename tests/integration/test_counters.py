"""Database-backed counters with real processes: cron runs leave no files, kill -9 loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.helpers import _child_env, assert_metric_deltas, metrics_saved, run_manage, scrape
from tests.integration.conftest import (
    ACKED_OLD,
    EXPIRED,
    LIVE,
    tables_truncate,
    uploads_count_by_kind,
    uploads_insert,
)

pytestmark = pytest.mark.django_db(transaction=True)

SWEPT = "molecule_pending_uploads_swept_total"

# Sweeps with batches of 5 and stops for good after the first committed batch, announcing it.
SWEEP_THEN_HANG_SCRIPT = """
import sys, time
import django
django.setup()
from pending_uploads.services import uploads_sweep

def hang(done, batches):
    sys.stdout.write(f"committed {done.acked} {done.expired}\\n")
    sys.stdout.flush()
    time.sleep(600)

uploads_sweep(on_batch=hang)
"""


@pytest.fixture
def clean_tables():
    yield
    tables_truncate()


def test_cli_sweeps_write_no_metrics_files_and_reach_metrics_exactly(
    tmp_path: Path, clean_tables
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = _child_env(None) | {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    api = Client()
    before = metrics_saved(scrape(api))
    deleted = {"acked": 0, "expired": 0}

    for run in range(3):
        uploads_insert(ACKED_OLD, 4 + run)
        uploads_insert(EXPIRED, 2 + run)
        uploads_insert(LIVE, 1)
        result = run_manage("sweep_uploads", "--json", env=env)
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        deleted["acked"] += report["acked"]
        deleted["expired"] += report["expired"]

    # Per-pid files would be counter_<pid>.db, gauge_*_<pid>.db, histogram_<pid>.db.
    assert sorted(os.listdir(metrics_dir)) == []
    assert deleted == {"acked": 4 + 5 + 6, "expired": 2 + 3 + 4}
    assert uploads_count_by_kind()[ACKED_OLD.name] == 0
    assert_metric_deltas(before, SWEPT, "outcome", deleted, exposition=scrape(api))


def test_kill_9_right_after_a_batch_commits_loses_no_count(clean_tables) -> None:
    uploads_insert(ACKED_OLD, 40)
    uploads_insert(EXPIRED, 40)
    start = uploads_count_by_kind()
    api = Client()
    before = metrics_saved(scrape(api))
    env = _child_env(None) | {"PENDING_UPLOADS_SWEEP_BATCH_SIZE": "5"}

    child = subprocess.Popen(
        [sys.executable, "-c", SWEEP_THEN_HANG_SCRIPT],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line == "committed 5 5\n", line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    end = uploads_count_by_kind()
    gone = {
        "acked": start[ACKED_OLD.name] - end[ACKED_OLD.name],
        "expired": start[EXPIRED.name] - end[EXPIRED.name],
    }
    assert gone == {"acked": 5, "expired": 5}
    assert_metric_deltas(before, SWEPT, "outcome", gone, exposition=scrape(api))
