"""Activity retention: the services, the scheduled job and the sweep_activity command."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django.test import override_settings

from molecule import tasks
from molecule.managers import ActivityLogManager
from molecule.models import MetricTotal, Workspace
from molecule.services import activity_count_error, activity_sweep, activity_sweep_preview
from tests.helpers import (
    assert_metric_delta,
    metric_value,
    metrics_saved,
    run_sql,
)

DAY = 86400


SWEPT = "molecule_activity_logs_swept_total"


def add_rows(count: int, age: timedelta) -> None:
    workspace_id = Workspace.objects.create(token_hash="0" * 64).id
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, created_at) "
        "SELECT %s, 'row', now() - %s - g * interval '1 second' FROM generate_series(1, %s) g",
        [workspace_id, age, count],
    )


def rows_left() -> int:
    return run_sql("SELECT count(*) FROM activity_logs")[0][0]


@pytest.fixture
def table(db) -> None:
    add_rows(7, timedelta(days=31))
    add_rows(3, timedelta(days=29))


def sweep_activity(*args: str) -> str:
    out = StringIO()
    call_command("sweep_activity", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- services ------------------------------------------------------------------------------


@override_settings(ACTIVITY_SWEEP_BATCH_SIZE=3)
def test_sweep_deletes_past_the_default_retention_counts_and_logs_one_line(table, caplog) -> None:
    caplog.set_level(logging.INFO, logger="molecule.services")
    before = metrics_saved()

    report = activity_sweep()

    assert (report.deleted, report.batches, report.dry_run) == (7, 3, False)
    assert report.retention == timedelta(days=30)
    assert rows_left() == 3
    assert_metric_delta(before, 7, SWEPT, outcome="deleted")
    stamp = metric_value("molecule_activity_logs_last_sweep_timestamp_seconds")
    assert stamp == pytest.approx(float(run_sql("SELECT EXTRACT(EPOCH FROM now())")[0][0]))
    lines = [r.getMessage() for r in caplog.records if r.name == "molecule.services"]
    assert len(lines) == 1
    assert lines[0].startswith("activity sweep: 7 rows older than 30 d deleted in 3 batches, ")


@override_settings(ACTIVITY_RETENTION=timedelta(days=1))
def test_preview_counts_without_deleting_or_counting(table) -> None:
    before = metrics_saved()

    report = activity_sweep_preview()

    assert (report.deleted, report.dry_run) == (10, True)
    assert rows_left() == 10
    assert_metric_delta(before, 0, SWEPT, outcome="deleted")


def broken(*args: object, **kwargs: object) -> None:
    raise OperationalError("server closed the connection")


def test_failing_sweep_counts_an_error_and_raises(table, monkeypatch) -> None:
    monkeypatch.setattr(ActivityLogManager, "_retention_cursor", broken)
    before = metrics_saved()

    with pytest.raises(Exception, match="activity_logs sweep failed: server closed"):
        activity_sweep()

    assert_metric_delta(before, 1, SWEPT, outcome="error")


def test_failing_preview_counts_nothing(table, monkeypatch) -> None:
    monkeypatch.setattr(ActivityLogManager, "sweep_preview", broken)
    before = metrics_saved()

    with pytest.raises(Exception, match=r"\(dry run\) failed: server closed"):
        activity_sweep_preview()

    assert_metric_delta(before, 0, SWEPT, outcome="error")


def test_uncountable_error_and_timestamp_are_logged_not_raised(table, monkeypatch, caplog) -> None:
    monkeypatch.setattr(MetricTotal.objects, "add", broken)
    monkeypatch.setattr(MetricTotal.objects, "gauges_set", broken)

    activity_count_error()
    assert activity_sweep().deleted == 7

    assert "could not count the failed activity sweep: server closed" in caplog.text
    assert "could not record the activity sweep's timestamp" in caplog.text


# --- the scheduled job ---------------------------------------------------------------------


def test_job_sweeps_and_reports(table) -> None:
    assert tasks.sweep_activity() == {"deleted": 7}


@pytest.mark.parametrize("error", [RuntimeError("boom"), OperationalError("boom")])
def test_failing_job_never_raises_and_counts_one_error(
    transactional_db, monkeypatch, error: Exception
) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(
        ActivityLogManager,
        "sweep" if isinstance(error, RuntimeError) else "_retention_cursor",
        failing,
    )
    before = metrics_saved()

    assert "boom" in tasks.sweep_activity()["error"]

    assert_metric_delta(before, 1, SWEPT, outcome="error")


# --- the command ---------------------------------------------------------------------------


def test_command_prints_one_summary_line(table) -> None:
    out = sweep_activity()

    assert out.startswith("swept 7 activity rows older than 30 d in ")
    assert out.endswith(" ms\n")
    assert rows_left() == 3


def test_command_json_is_one_line_with_the_documented_keys(table) -> None:
    out = sweep_activity("--json", "--retention", "30d")

    assert out.count("\n") == 1
    payload = json.loads(out)
    assert set(payload) == {"deleted", "batches", "retention_seconds", "duration_ms", "dry_run"}
    assert (payload["deleted"], payload["retention_seconds"], payload["dry_run"]) == (
        7,
        30 * DAY,
        False,
    )
    assert payload["duration_ms"] >= 0


def test_command_dry_run_changes_nothing(table) -> None:
    out = sweep_activity("--dry-run", "--retention", "1d")

    assert out.startswith("would sweep 10 activity rows older than 1 d in ")
    assert out.endswith(" ms (dry run)\n")
    assert json.loads(sweep_activity("--dry-run", "--json"))["dry_run"] is True
    assert rows_left() == 10


def test_command_summary_agrees_in_number_and_shows_the_retention_in_units(db) -> None:
    add_rows(1, timedelta(minutes=2))

    out = sweep_activity("--retention", "90s")

    assert re.fullmatch(r"swept 1 activity row older than 1 min 30 s in \d+ ms\n", out), out
