"""The phantom-busy sweep service and its scheduled job: resets, logging and metrics."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.test import override_settings

from molecule.managers import WorkspaceRef
from molecule.models import ActivityLog, MetricTotal, Workspace
from molecule.services.activity import activity_append
from scheduler import tasks
from scheduler.services import (
    PhantomBusySweepError,
    phantom_busy_count_error,
    workspaces_reset_phantom_busy,
)
from tests.helpers import (
    assert_metric_delta,
    assert_uncounted_error_logged,
    lock_timeout,
    metric_value,
    metrics_saved,
    run_sql,
    table_locked_elsewhere,
)

STALE = timedelta(minutes=10)
SERVICE_LOGGER = "scheduler.services"
TASK_LOGGER = "scheduler.tasks"
RESETS = "molecule_phantom_busy_resets_total"
ERRORS = "molecule_phantom_busy_sweep_errors_total"


def busy_state() -> dict[uuid.UUID, tuple[int, str]]:
    return {
        row[0]: (row[1], row[2])
        for row in Workspace.objects.values_list("id", "active_tasks", "current_task")
    }


def add_activity(workspace: Workspace, age: timedelta) -> None:
    entry = activity_append(workspace_id=workspace.id, activity_type="a2a_receive")
    ActivityLog.objects.filter(pk=entry.pk).update(created_at=TransactionNow() - age)


@pytest.fixture
def fleet(db, register) -> dict[str, Workspace]:
    return make_fleet(register)


def make_fleet(register) -> dict[str, Workspace]:
    """One workspace per case; only 'silent' and 'never_active' are phantom-busy."""
    busy = {"active_tasks": 2, "current_task": "summarise"}
    workspaces = {
        "silent": register("b-silent", **busy).workspace,
        "never_active": register("a-never-active", **busy).workspace,
        "recent": register("c-recent", **busy).workspace,
        "removed": register("d-removed", status="removed", **busy).workspace,
        "idle": register("e-idle").workspace,
        "neighbour": register("f-neighbour").workspace,
    }
    add_activity(workspaces["silent"], timedelta(hours=1))
    add_activity(workspaces["recent"], timedelta(minutes=1))
    add_activity(workspaces["removed"], timedelta(hours=1))
    # Recent activity of another workspace must not protect 'silent'.
    add_activity(workspaces["neighbour"], timedelta(seconds=5))
    return workspaces


def expected_refs(fleet: dict[str, Workspace]) -> list[WorkspaceRef]:
    phantom = [fleet["never_active"], fleet["silent"]]
    return [WorkspaceRef(ws.id, ws.name) for ws in phantom]


def test_resets_phantom_busy_rows_and_counts_each(fleet) -> None:
    before = metrics_saved()

    report = workspaces_reset_phantom_busy(stale_after=STALE)

    assert report.workspaces == expected_refs(fleet)
    assert not report.dry_run
    assert report.stale_after == STALE
    assert len(report.workspaces) == 2
    assert_metric_delta(before, 2, RESETS)
    assert_metric_delta(before, 0, ERRORS)
    state = busy_state()
    for name in ("silent", "never_active"):
        assert state[fleet[name].id] == (0, ""), name
    for name in ("recent", "removed"):
        assert state[fleet[name].id] == (2, "summarise"), name
    assert state[fleet["idle"].id] == (0, "")


def test_reset_stamps_updated_at_with_the_database_clock(fleet) -> None:
    Workspace.objects.update(updated_at=TransactionNow() - timedelta(days=1))

    workspaces_reset_phantom_busy(stale_after=STALE)

    fresh = run_sql(
        "SELECT id FROM workspaces WHERE updated_at = now() ORDER BY name",
    )
    assert [row[0] for row in fresh] == [ref.id for ref in expected_refs(fleet)]


def test_default_threshold_comes_from_the_setting(fleet) -> None:
    # Two hours of silence is needed now, so 'silent' (one hour) is kept.
    with override_settings(PHANTOM_BUSY_STALE_AFTER=timedelta(hours=2)):
        report = workspaces_reset_phantom_busy()

    assert report.stale_after == timedelta(hours=2)
    assert [ref.id for ref in report.workspaces] == [fleet["never_active"].id]


def test_logs_one_line_per_reset_row_and_a_summary(fleet, caplog) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE_LOGGER)

    workspaces_reset_phantom_busy(stale_after=STALE)

    lines = [r.getMessage() for r in caplog.records if r.name == SERVICE_LOGGER]
    assert lines == [
        f"phantom-busy reset workspace id={ref.id} name={ref.name}: no activity for 10 min"
        for ref in expected_refs(fleet)
    ] + ["phantom-busy sweep reset 2 workspaces (stale after 10 min)"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == SERVICE_LOGGER)


def test_one_reset_logs_in_the_singular_with_the_threshold_in_units(db, register, caplog) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE_LOGGER)
    solo = register("solo", active_tasks=1).workspace

    workspaces_reset_phantom_busy(stale_after=timedelta(seconds=90))

    assert [r.getMessage() for r in caplog.records if r.name == SERVICE_LOGGER] == [
        f"phantom-busy reset workspace id={solo.id} name=solo: no activity for 1 min 30 s",
        "phantom-busy sweep reset 1 workspace (stale after 1 min 30 s)",
    ]


def test_nothing_to_reset_logs_nothing_and_counts_nothing(fleet, caplog) -> None:
    workspaces_reset_phantom_busy(stale_after=STALE)
    caplog.clear()
    caplog.set_level(logging.INFO, logger=SERVICE_LOGGER)
    before = metrics_saved()

    report = workspaces_reset_phantom_busy(stale_after=STALE)

    assert report.workspaces == []
    assert_metric_delta(before, 0, RESETS)
    assert [r for r in caplog.records if r.name == SERVICE_LOGGER] == []


def test_dry_run_lists_the_rows_and_changes_nothing(fleet) -> None:
    state_before = busy_state()
    before = metrics_saved()

    report = workspaces_reset_phantom_busy(stale_after=STALE, dry_run=True)

    assert report.dry_run
    assert report.workspaces == expected_refs(fleet)
    assert busy_state() == state_before
    assert_metric_delta(before, 0, RESETS)
    assert_metric_delta(before, 0, ERRORS)


def test_sweep_sets_the_active_workspaces_gauge(fleet) -> None:
    from scheduler import metrics

    MetricTotal.objects.gauges_set({(metrics.workspaces_active.name, ""): -1})
    expected = run_sql("SELECT count(*) FROM workspaces WHERE status <> 'removed'")[0][0]

    workspaces_reset_phantom_busy(stale_after=STALE)

    assert expected == len(fleet) - 1
    assert metric_value("molecule_workspaces_active") == expected


@pytest.mark.parametrize("dry_run", [False, True])
def test_failing_sweep_raises_and_counts_an_error(
    transactional_db, register, caplog, dry_run: bool
) -> None:
    make_fleet(register)
    state_before = busy_state()
    before = metrics_saved()

    with (
        lock_timeout("50ms"),
        table_locked_elsewhere("workspaces"),
        pytest.raises(PhantomBusySweepError, match="canceling statement") as caught,
    ):
        workspaces_reset_phantom_busy(stale_after=STALE, dry_run=dry_run)

    # lock_not_available: a real PostgreSQL error, not a stand-in.
    assert caught.value.__cause__.__cause__.sqlstate == "55P03"
    # A failed dry run is an operator's preview, not a failed sweep.
    assert_metric_delta(before, (0 if dry_run else 1), ERRORS)
    assert_metric_delta(before, 0, RESETS)
    assert busy_state() == state_before
    assert "phantom-busy sweep failed" in caplog.text


# --- the scheduled job ---------------------------------------------------------------------
# transactional_db: after a failure the job drops unusable connections, which would also drop
# the connection holding a test transaction.


@pytest.fixture
def committed_fleet(transactional_db, register) -> dict[str, Workspace]:
    phantom = register("phantom", active_tasks=1, current_task="x").workspace
    add_activity(phantom, timedelta(hours=1))
    return {"phantom": phantom, "idle": register("idle").workspace}


@override_settings(PHANTOM_BUSY_STALE_AFTER=STALE)
def test_job_resets_and_reports(committed_fleet) -> None:
    before = metrics_saved()

    assert tasks.sweep_phantom_busy() == {"reset": 1}

    assert_metric_delta(before, 1, RESETS)
    assert busy_state()[committed_fleet["phantom"].id] == (0, "")
    assert metric_value("molecule_workspaces_active") == 2


@override_settings(PHANTOM_BUSY_STALE_AFTER=STALE)
def test_failing_job_logs_the_traceback_and_the_next_run_works(committed_fleet, caplog) -> None:
    before = metrics_saved()

    with lock_timeout("50ms"), table_locked_elsewhere("workspaces"):
        outcome = tasks.sweep_phantom_busy()

    assert "lock timeout" in outcome["error"]
    assert_metric_delta(before, 1, ERRORS)
    logged = [r for r in caplog.records if r.name == TASK_LOGGER and r.exc_info]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert "Traceback" in caplog.text
    assert busy_state()[committed_fleet["phantom"].id] == (1, "x")

    assert tasks.sweep_phantom_busy() == {"reset": 1}
    assert_metric_delta(before, 1, RESETS)
    assert_metric_delta(before, 1, ERRORS)
    assert busy_state()[committed_fleet["phantom"].id] == (0, "")


def test_error_count_that_cannot_be_stored_is_logged_in_one_line(db, monkeypatch, caplog) -> None:
    logged = "could not count the failed phantom-busy sweep"
    assert_uncounted_error_logged(phantom_busy_count_error, logged, monkeypatch, caplog)
