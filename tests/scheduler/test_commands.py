"""manage.py sweep_phantom_busy: output, --json, --dry-run, --stale-after and exit codes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.core.management import call_command
from django.test import override_settings

from molecule.models import ActivityLog, Workspace
from molecule.services.activity import activity_append
from tests.helpers import (
    assert_metric_delta,
    metrics_saved,
    run_manage,
)

RESETS = "molecule_phantom_busy_resets_total"
ERRORS = "molecule_phantom_busy_sweep_errors_total"


def busy_state() -> dict[uuid.UUID, int]:
    return dict(Workspace.objects.values_list("id", "active_tasks"))


def silent_for(workspace: Workspace, age: timedelta) -> None:
    entry = activity_append(workspace_id=workspace.id, activity_type="a2a_receive")
    ActivityLog.objects.filter(pk=entry.pk).update(created_at=TransactionNow() - age)


def make_fleet(register) -> dict[str, Workspace]:
    """Busy workspaces silent for 1 h and 20 min, one busy and recently active, one idle."""
    fleet = {
        "hour": register("alpha", active_tasks=3).workspace,
        "twenty": register("bravo", active_tasks=1).workspace,
        "recent": register("charlie", active_tasks=1).workspace,
        "idle": register("delta").workspace,
    }
    silent_for(fleet["hour"], timedelta(hours=1))
    silent_for(fleet["twenty"], timedelta(minutes=20))
    silent_for(fleet["recent"], timedelta(seconds=30))
    return fleet


@pytest.fixture
def fleet(db, register) -> dict[str, Workspace]:
    return make_fleet(register)


def sweep_phantom_busy(*args: str) -> str:
    out = StringIO()
    call_command("sweep_phantom_busy", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@override_settings(PHANTOM_BUSY_STALE_AFTER=timedelta(minutes=10))
def test_prints_a_summary_and_one_line_per_workspace(fleet) -> None:
    before = metrics_saved()

    out = sweep_phantom_busy()

    alpha, bravo = fleet["hour"], fleet["twenty"]
    assert out == (
        "reset 2 phantom-busy workspaces (no activity for 10 min)\n"
        f"  {alpha.id} alpha\n"
        f"  {bravo.id} bravo\n"
    )
    assert_metric_delta(before, 2, RESETS)
    state = busy_state()
    assert (state[alpha.id], state[bravo.id], state[fleet["recent"].id]) == (0, 0, 1)


def test_nothing_to_reset_prints_the_summary_only(db) -> None:
    assert sweep_phantom_busy("--stale-after", "10m") == (
        "reset 0 phantom-busy workspaces (no activity for 10 min)\n"
    )


@pytest.mark.parametrize(
    ("stale_after", "shown"), [("1", "1 s"), ("90s", "1 min 30 s"), ("2d", "2 d")]
)
def test_the_threshold_is_shown_in_units(db, stale_after: str, shown: str) -> None:
    assert sweep_phantom_busy("--stale-after", stale_after) == (
        f"reset 0 phantom-busy workspaces (no activity for {shown})\n"
    )


@override_settings(PHANTOM_BUSY_STALE_AFTER=timedelta(minutes=10))
def test_json_has_the_documented_shape_on_one_line(fleet) -> None:
    out = sweep_phantom_busy("--json")

    assert out.count("\n") == 1 and out.endswith("\n")
    assert json.loads(out) == {
        "reset": 2,
        "workspaces": [
            {"id": str(fleet["hour"].id), "name": "alpha"},
            {"id": str(fleet["twenty"].id), "name": "bravo"},
        ],
        "stale_after_seconds": 600,
        "dry_run": False,
    }


def test_dry_run_lists_would_be_resets_and_changes_nothing(fleet) -> None:
    state_before = busy_state()
    before = metrics_saved()

    out = sweep_phantom_busy("--dry-run", "--stale-after", "30m")
    payload = json.loads(sweep_phantom_busy("--dry-run", "--stale-after", "30m", "--json"))

    assert out == (
        "would reset 1 phantom-busy workspace (no activity for 30 min) (dry run)\n"
        f"  {fleet['hour'].id} alpha\n"
    )
    assert payload == {
        "reset": 1,
        "workspaces": [{"id": str(fleet["hour"].id), "name": "alpha"}],
        "stale_after_seconds": 1800,
        "dry_run": True,
    }
    assert busy_state() == state_before
    assert_metric_delta(before, 0, RESETS)


@pytest.mark.parametrize(
    ("stale_after", "seconds", "reset"),
    [("90s", 90, 2), ("15m", 900, 2), ("1800", 1800, 1), ("0.5h", 1800, 1), ("2h", 7200, 0)],
)
def test_stale_after_accepts_every_duration_form(
    fleet, stale_after: str, seconds: int, reset: int
) -> None:
    payload = json.loads(sweep_phantom_busy("--stale-after", stale_after, "--json"))

    assert payload["stale_after_seconds"] == seconds
    assert payload["reset"] == reset
    assert sum(1 for tasks in busy_state().values() if tasks) == 3 - reset


# --- real processes: exit codes and what reaches stdout/stderr -----------------------------


def test_json_in_a_real_process_keeps_stdout_to_one_line(transactional_db, register) -> None:
    fleet = make_fleet(register)

    result = run_manage("sweep_phantom_busy", "--stale-after", "10m", "--json")

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    payload = json.loads(result.stdout)
    assert payload["reset"] == 2
    assert [ws["name"] for ws in payload["workspaces"]] == ["alpha", "bravo"]
    # The per-row log lines go to stderr, never into the JSON on stdout.
    assert f"id={fleet['hour'].id} name=alpha" in result.stderr
    assert busy_state()[fleet["hour"].id] == 0
