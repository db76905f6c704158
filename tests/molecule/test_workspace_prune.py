"""The abandoned-workspace prune: who goes, who stays, counts, the job and the command."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from molecule import tasks
from molecule.housekeeping import (
    workspaces_prune,
    workspaces_prune_count_error,
    workspaces_prune_preview,
)
from molecule.models import ActivityLog, Workspace, WorkspaceUsage
from molecule.pruning import PruneError, PruneResult
from tests.helpers import (
    assert_metric_delta,
    assert_uncounted_error_logged,
    lock_timeout,
    make_upload,
    metrics_saved,
    run_sql,
    table_locked_elsewhere,
)

DAY = 86400
PRUNED = "molecule_workspaces_pruned_total"
IDLE = timedelta(days=30)


def workspace(name: str, *, idle_days: float, status: str = "online") -> Workspace:
    """A workspace last registered or heard from ``idle_days`` ago."""
    created = Workspace.objects.create(name=name, status=status, token_hash="0" * 64)
    run_sql(
        "UPDATE workspaces SET updated_at = now() - make_interval(days => %s) WHERE id = %s",
        [idle_days, created.id],
    )
    return created


def activity(ws: Workspace, *, age_days: float) -> None:
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, created_at) "
        "VALUES (%s, 'agent_log', now() - make_interval(days => %s))",
        [ws.id, age_days],
    )


def names_left() -> set[str]:
    return set(Workspace.objects.values_list("name", flat=True))


def make_fleet() -> dict[str, Workspace]:
    fleet = {
        "abandoned": workspace("abandoned", idle_days=31),
        "abandoned-old-activity": workspace("abandoned-old-activity", idle_days=40),
        "abandoned-second": workspace("abandoned-second", idle_days=90),
        "heartbeating": workspace("heartbeating", idle_days=0),
        "recently-registered": workspace("recently-registered", idle_days=29),
        "recent-activity": workspace("recent-activity", idle_days=31),
        "pending-upload": workspace("pending-upload", idle_days=31),
        "removed": workspace("removed", idle_days=365, status="removed"),
    }
    activity(fleet["abandoned-old-activity"], age_days=36)
    activity(fleet["recent-activity"], age_days=2)
    make_upload("acked", workspace_id=fleet["pending-upload"].id)
    return fleet


@pytest.fixture
def fleet(db) -> dict[str, Workspace]:
    return make_fleet()


ABANDONED = {"abandoned", "abandoned-old-activity", "abandoned-second"}


def test_the_prune_deletes_exactly_the_abandoned_and_counts_them(fleet) -> None:
    before = metrics_saved()

    report = workspaces_prune()

    assert (report.pruned, report.idle_for, report.dry_run) == (3, IDLE, False)
    assert names_left() == {name for name in fleet} - ABANDONED
    # Their old activity went with them; the others' rows stay.
    assert ActivityLog.objects.count() == 1
    assert_metric_delta(before, 3, PRUNED, outcome="pruned")
    assert workspaces_prune().pruned == 0


def test_removed_workspaces_are_kept_so_they_stay_removed(fleet, api: Client) -> None:
    workspaces_prune(idle_for=timedelta(0))

    response = api.post(
        "/registry/register",
        json.dumps({"id": str(fleet["removed"].id), "delivery_mode": "poll"}),
        content_type="application/json",
    )

    assert response.status_code == 401
    assert "removed" in names_left()


def test_a_pruned_workspace_that_comes_back_registers_as_new(fleet, api: Client) -> None:
    gone = fleet["abandoned"].id
    workspaces_prune()

    response = api.post(
        "/registry/register",
        json.dumps({"id": str(gone), "delivery_mode": "poll"}),
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer the-token-it-had-before",
    )

    assert response.status_code == 200
    assert response.json()["auth_token"]


@override_settings(WORKSPACE_PRUNE_BATCH_SIZE=2)
def test_batches_and_the_setting(fleet, caplog) -> None:
    caplog.set_level(logging.INFO, logger="molecule.housekeeping")

    report = workspaces_prune()

    assert (report.pruned, report.batches) == (3, 2)
    [line] = [r.getMessage() for r in caplog.records if r.name == "molecule.housekeeping"]
    assert line.startswith("workspace prune: 3 workspaces idle for 30 d deleted in 2 batches")


def test_one_workspace_is_counted_in_the_singular(db, caplog) -> None:
    caplog.set_level(logging.INFO, logger="molecule.housekeeping")
    workspace("alone", idle_days=40)

    out = prune_workspaces("--idle-for", "36h")

    assert out.startswith("pruned 1 workspace idle for 1 d 12 h in ")
    [line] = [r.getMessage() for r in caplog.records if r.name == "molecule.housekeeping"]
    assert line.startswith(
        "workspace prune: 1 workspace idle for 1 d 12 h deleted in 1 batch, 0 quota windows, "
    )


def test_the_prune_also_deletes_ended_quota_windows(fleet) -> None:
    run_sql(
        "INSERT INTO workspace_usage (workspace_id, quota, window_start, amount) VALUES "
        "(%s, 'uploads', now() - interval '2 hours', 1), (%s, 'uploads', now(), 1)",
        [uuid.uuid4(), uuid.uuid4()],
    )

    assert workspaces_prune().usage_windows == 1
    assert WorkspaceUsage.objects.count() == 1


def test_the_preview_counts_without_deleting(fleet) -> None:
    before = metrics_saved()

    report = workspaces_prune_preview(idle_for=timedelta(days=35))

    assert (report.pruned, report.dry_run, report.usage_windows) == (2, True, None)
    assert len(names_left()) == len(fleet)
    assert_metric_delta(before, 0, PRUNED, outcome="pruned")


@pytest.fixture
def committed_fleet(transactional_db) -> dict[str, Workspace]:
    return make_fleet()


def test_a_failing_prune_counts_an_error_and_raises_a_real_lock_timeout(committed_fleet) -> None:
    before = metrics_saved()

    with lock_timeout("50ms"), table_locked_elsewhere("workspaces"):
        with pytest.raises(PruneError) as caught:
            workspaces_prune()
        with pytest.raises(PruneError, match=r"\(dry run\) failed: canceling statement"):
            workspaces_prune_preview()

    # lock_not_available: a real PostgreSQL error.
    assert caught.value.__cause__.__cause__.sqlstate == "55P03"
    assert caught.value.partial == PruneResult(0, 0)
    assert_metric_delta(before, 1, PRUNED, outcome="error")
    assert names_left() == set(committed_fleet)
    assert workspaces_prune().pruned == 3


def test_a_prune_failing_at_the_quota_windows_reports_the_workspaces_it_deleted(
    committed_fleet,
) -> None:
    before = metrics_saved()

    with (
        lock_timeout("50ms"),
        table_locked_elsewhere("workspace_usage"),
        pytest.raises(PruneError, match="workspace prune failed: canceling") as caught,
    ):
        workspaces_prune()

    assert caught.value.partial == PruneResult(3, 1)
    assert_metric_delta(before, 3, PRUNED, outcome="pruned")
    assert_metric_delta(before, 1, PRUNED, outcome="error")


def test_an_error_count_that_cannot_be_stored_is_logged(db, monkeypatch, caplog) -> None:
    assert_uncounted_error_logged(
        workspaces_prune_count_error,
        "could not count the failed workspace prune",
        monkeypatch,
        caplog,
    )


# --- the scheduled job and the command -------------------------------------------------------


def test_the_job_prunes_and_reports(fleet) -> None:
    assert tasks.prune_workspaces() == {"pruned": 3, "usage_windows": 0}


def prune_workspaces(*args: str) -> str:
    out = StringIO()
    call_command("prune_workspaces", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_prints_one_summary_line(fleet) -> None:
    out = prune_workspaces()

    assert out.startswith("pruned 3 workspaces idle for 30 d in ")
    assert out.endswith(" ms\n")


def test_the_command_json_is_one_line_with_the_documented_keys(fleet) -> None:
    payload = json.loads(prune_workspaces("--json", "--idle-for", "35d"))

    assert payload.pop("duration_ms") >= 0
    assert payload == {
        "pruned": 2,
        "batches": 1,
        "usage_windows": 0,
        "idle_for_seconds": 35 * DAY,
        "dry_run": False,
    }


def test_the_command_dry_run_changes_nothing(fleet) -> None:
    out = prune_workspaces("--dry-run")

    assert out.startswith("would prune 3 workspaces idle for 30 d in ")
    assert out.endswith(" ms (dry run)\n")
    assert len(names_left()) == len(fleet)
