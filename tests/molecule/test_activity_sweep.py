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
from molecule.models import InboxDeliveryState, MetricTotal, Workspace
from molecule.retention import ActivitySweepError
from molecule.services.activity_sweep import (
    activity_count_error,
    activity_sweep,
    activity_sweep_preview,
)
from tests.helpers import (
    assert_metric_delta,
    lock_timeout,
    metric_value,
    metrics_saved,
    run_sql,
    table_locked_elsewhere,
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
    caplog.set_level(logging.INFO, logger="molecule.services.activity_sweep")
    before = metrics_saved()

    report = activity_sweep()

    # Windows of 3 over the 10 rows past the soft horizon: 3 + 3 + 3 + 1, the last one short.
    assert (report.deleted, report.batches, report.dry_run) == (7, 4, False)
    assert report.horizons == (timedelta(days=7), timedelta(days=30), None)
    assert rows_left() == 3
    assert_metric_delta(before, 7, SWEPT, outcome="deleted")
    stamp = metric_value("molecule_activity_logs_last_sweep_timestamp_seconds")
    assert stamp == pytest.approx(float(run_sql("SELECT EXTRACT(EPOCH FROM now())")[0][0]))
    lines = [r.getMessage() for r in caplog.records if r.name == "molecule.services.activity_sweep"]
    assert len(lines) == 1
    assert lines[0].startswith(
        "activity sweep: 7 rows acknowledged and older than 7 d, or older than 30 d, "
        "deleted in 4 batches"
    )
    assert caplog.records[-1].levelno == logging.INFO


@override_settings(ACTIVITY_RETENTION=timedelta(days=1), ACTIVITY_SOFT_RETENTION=timedelta(hours=1))
def test_preview_counts_without_deleting_or_counting(table) -> None:
    before = metrics_saved()

    report = activity_sweep_preview()

    assert (report.deleted, report.dry_run) == (10, True)
    assert rows_left() == 10
    assert_metric_delta(before, 0, SWEPT, outcome="deleted")


def broken(*args: object, **kwargs: object) -> None:
    raise OperationalError("server closed the connection")


@pytest.fixture
def committed_table(transactional_db) -> None:
    add_rows(7, timedelta(days=31))
    add_rows(3, timedelta(days=29))


def test_failing_sweep_counts_an_error_and_raises(committed_table) -> None:
    before = metrics_saved()

    with lock_timeout("50ms"), table_locked_elsewhere("activity_logs"):
        with pytest.raises(ActivitySweepError, match="activity_logs sweep failed: canceling") as e:
            activity_sweep()
        with pytest.raises(ActivitySweepError, match=r"\(dry run\) failed: canceling"):
            activity_sweep_preview()

    # lock_not_available: a real PostgreSQL error, not a stand-in.
    assert e.value.__cause__.__cause__.sqlstate == "55P03"
    assert_metric_delta(before, 1, SWEPT, outcome="error")
    assert rows_left() == 10
    assert activity_sweep().deleted == 7


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


def test_failing_job_never_raises_and_counts_one_error(transactional_db, monkeypatch) -> None:
    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ActivityLogManager, "sweep", failing)
    before = metrics_saved()

    assert "boom" in tasks.sweep_activity()["error"]

    assert_metric_delta(before, 1, SWEPT, outcome="error")


def test_a_job_hitting_a_real_lock_timeout_never_raises_and_counts_one_error(
    committed_table,
) -> None:
    before = metrics_saved()

    with lock_timeout("50ms"), table_locked_elsewhere("activity_logs"):
        outcome = tasks.sweep_activity()

    assert "lock timeout" in outcome["error"]
    assert_metric_delta(before, 1, SWEPT, outcome="error")
    assert tasks.sweep_activity() == {"deleted": 7}


# --- the command ---------------------------------------------------------------------------


def test_command_prints_one_summary_line(table) -> None:
    out = sweep_activity()

    assert out.startswith(
        "swept 7 activity rows acknowledged and older than 7 d, or older than 30 d, in "
    )
    assert out.endswith(" ms\n")
    assert rows_left() == 3


def test_command_json_is_one_line_with_the_documented_keys(table) -> None:
    out = sweep_activity("--json", "--retention", "30d")

    assert out.count("\n") == 1
    payload = json.loads(out)
    assert set(payload) == {
        "deleted",
        "batches",
        "retention_seconds",
        "soft_retention_seconds",
        "retention_clamped",
        "duration_ms",
        "dry_run",
    }
    assert (payload["deleted"], payload["retention_seconds"], payload["dry_run"]) == (
        7,
        30 * DAY,
        False,
    )
    assert (payload["soft_retention_seconds"], payload["retention_clamped"]) == (7 * DAY, False)
    assert payload["duration_ms"] >= 0


def test_command_dry_run_changes_nothing(table) -> None:
    out = sweep_activity("--dry-run", "--retention", "1d", "--soft-retention", "1h")

    assert out.startswith(
        "would sweep 10 activity rows acknowledged and older than 1 h, or older than 1 d, in "
    )
    assert out.endswith(" ms (dry run)\n")
    assert json.loads(sweep_activity("--dry-run", "--json"))["dry_run"] is True
    assert rows_left() == 10


# --- the two horizons ----------------------------------------------------------------------


def acknowledge_all() -> None:
    for workspace_id, last in run_sql(
        "SELECT workspace_id, max(id) + 1 FROM activity_logs GROUP BY workspace_id"
    ):
        InboxDeliveryState.objects.ack(workspace_id, last)


def test_acknowledged_rows_go_after_the_soft_horizon(table) -> None:
    acknowledge_all()

    assert activity_sweep_preview().deleted == 10
    assert activity_sweep().deleted == 10
    assert rows_left() == 0


@override_settings(ACTIVITY_SOFT_RETENTION=timedelta(days=40))
def test_a_soft_horizon_beyond_the_hard_one_raises_it_and_says_so(table, caplog) -> None:
    caplog.set_level(logging.INFO, logger="molecule.services.activity_sweep")

    out = sweep_activity()
    report = activity_sweep()

    first, second = out.splitlines()
    assert first.startswith(
        "swept 0 activity rows acknowledged and older than 40 d, or older than 40 d, in "
    )
    assert second == "retention 30 d is below the soft retention 40 d: both are 40 d"
    assert report.horizons.clamped_from == timedelta(days=30)
    assert json.loads(sweep_activity("--json"))["retention_clamped"] is True
    [record, *_] = [r for r in caplog.records if r.name == "molecule.services.activity_sweep"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(
        "(retention 30 d is below the soft retention 40 d: both are 40 d)"
    )
    assert rows_left() == 10


def test_the_soft_retention_option_overrides_the_setting(table) -> None:
    acknowledge_all()

    out = sweep_activity("--soft-retention", "30d", "--retention", "60d")

    # Acknowledged, but the 29-day-old rows are inside the 30-day soft horizon.
    assert out.startswith(
        "swept 7 activity rows acknowledged and older than 30 d, or older than 60 d, in "
    )
    assert rows_left() == 3


def test_command_summary_agrees_in_number_and_shows_the_retention_in_units(db) -> None:
    add_rows(1, timedelta(minutes=2))

    out = sweep_activity("--retention", "90s", "--soft-retention", "60s")

    assert re.fullmatch(
        r"swept 1 activity row acknowledged and older than 1 min, "
        r"or older than 1 min 30 s, in \d+ ms\n",
        out,
    ), out
