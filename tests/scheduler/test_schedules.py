"""The declared schedules: upserted by name, importable, catch-up safe, due at worker start."""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command, get_commands
from django.test import override_settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand
from django_q.models import Schedule

from scheduler.schedules import SCHEDULES
from scheduler.services import schedules_mark_due, schedules_sync, schedules_sync_after_migrate
from tests.helpers import run_manage

NAMES = sorted(spec.name for spec in SCHEDULES)


def declared() -> dict[str, Schedule]:
    return {s.name: s for s in Schedule.objects.filter(name__in=NAMES)}


def test_every_declared_name_is_unique() -> None:
    assert len(NAMES) == len(set(NAMES)) == len(SCHEDULES) >= 2


@pytest.mark.parametrize("spec", SCHEDULES, ids=lambda spec: spec.name)
def test_every_scheduled_dotted_path_imports(spec) -> None:
    module_name, _, attribute = spec.func.rpartition(".")
    func = getattr(importlib.import_module(module_name), attribute)
    assert callable(func)


@pytest.mark.django_db
def test_sync_creates_each_schedule_once() -> None:
    Schedule.objects.all().delete()

    schedules_sync()
    schedules_sync()
    call_command("migrate", verbosity=0)

    rows = list(Schedule.objects.order_by("name").values_list("name", flat=True))
    assert rows == NAMES
    for spec in SCHEDULES:
        row = declared()[spec.name]
        assert row.func == spec.func
        assert row.schedule_type == Schedule.MINUTES
        assert row.repeats == -1
        assert row.minutes == round(spec.interval().total_seconds() / 60)


@pytest.mark.django_db
def test_first_sync_schedules_the_first_run_one_interval_ahead() -> None:
    Schedule.objects.all().delete()
    start = timezone.now()

    schedules_sync()

    for spec in SCHEDULES:
        row = declared()[spec.name]
        interval = timedelta(minutes=row.minutes)
        assert start + interval <= row.next_run <= timezone.now() + interval


@pytest.mark.django_db
def test_sync_updates_rows_in_place_and_repairs_drifted_fields() -> None:
    schedules_sync()
    ids = {name: row.id for name, row in declared().items()}
    Schedule.objects.filter(name__in=NAMES).update(func="stale.path", minutes=999)

    schedules_sync()

    rows = declared()
    # Upserted, not deleted and recreated: the same rows, with the declared values again.
    assert {name: row.id for name, row in rows.items()} == ids
    for spec in SCHEDULES:
        assert rows[spec.name].minutes != 999
        assert rows[spec.name].func == spec.func


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "name"),
    [
        ("PENDING_UPLOADS_SWEEP_INTERVAL", "pending_uploads.sweep"),
        ("PHANTOM_BUSY_SWEEP_INTERVAL", "scheduler.phantom_busy_sweep"),
    ],
)
def test_shorter_interval_updates_minutes_and_pulls_next_run_in(setting: str, name: str) -> None:
    with override_settings(**{setting: timedelta(minutes=30)}):
        schedules_sync()
    assert declared()[name].minutes == 30

    with override_settings(**{setting: timedelta(minutes=2)}):
        schedules_sync()

    row = declared()[name]
    assert row.minutes == 2
    assert row.next_run <= timezone.now() + timedelta(minutes=2)


@pytest.mark.django_db
def test_longer_interval_updates_minutes_and_keeps_next_run() -> None:
    schedules_sync()
    next_run = declared()["pending_uploads.sweep"].next_run

    with override_settings(PENDING_UPLOADS_SWEEP_INTERVAL=timedelta(hours=1)):
        schedules_sync()

    row = declared()["pending_uploads.sweep"]
    assert row.minutes == 60
    assert row.next_run == next_run


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("interval", "minutes"),
    [(timedelta(seconds=10), 1), (timedelta(seconds=90), 2), (timedelta(hours=2), 120)],
)
def test_intervals_round_to_whole_minutes_of_at_least_one(
    interval: timedelta, minutes: int
) -> None:
    with override_settings(PENDING_UPLOADS_SWEEP_INTERVAL=interval):
        schedules_sync()
    assert declared()["pending_uploads.sweep"].minutes == minutes


def test_cluster_config_is_catch_up_safe() -> None:
    # After downtime a missed schedule runs once, not once per missed interval.
    assert Conf.CATCH_UP is False
    # A failed task is not re-delivered forever by the ORM broker.
    assert Conf.ACK_FAILURES is True
    assert Conf.MAX_ATTEMPTS == 1
    # A running task is not re-delivered while it is still running.
    assert Conf.TIMEOUT is not None
    assert Conf.TIMEOUT < Conf.RETRY


@pytest.mark.django_db
def test_mark_due_makes_every_declared_schedule_due_now() -> None:
    Schedule.objects.all().delete()
    schedules_sync()
    assert all(row.next_run > timezone.now() for row in declared().values())

    assert schedules_mark_due() == len(SCHEDULES)

    now = timezone.now()
    rows = declared()
    assert sorted(rows) == NAMES
    assert all(row.next_run <= now for row in rows.values())


@pytest.mark.django_db
def test_mark_due_creates_missing_schedules() -> None:
    Schedule.objects.all().delete()

    schedules_mark_due()

    assert sorted(declared()) == NAMES


def test_qcluster_command_is_the_schedulers() -> None:
    assert get_commands()["qcluster"] == "scheduler"


@pytest.mark.django_db
def test_qcluster_marks_schedules_due_before_starting_the_cluster(monkeypatch) -> None:
    schedules_sync()
    Schedule.objects.filter(name__in=NAMES).update(next_run=timezone.now() + timedelta(days=1))
    started: list[dict[str, bool]] = []

    def start_cluster(self: DjangoQClusterCommand, *args: Any, **options: Any) -> None:
        # What the cluster would see at its first tick.
        started.append({row.name: row.next_run <= timezone.now() for row in declared().values()})

    monkeypatch.setattr(DjangoQClusterCommand, "handle", start_cluster)

    call_command("qcluster", "--run-once")

    # The cluster started once, and at that moment every schedule was already due.
    assert started == [dict.fromkeys(NAMES, True)]


@pytest.mark.django_db
def test_phantom_busy_disabled_removes_its_schedule_and_keeps_the_others() -> None:
    schedules_sync()
    assert "scheduler.phantom_busy_sweep" in declared()

    with override_settings(PHANTOM_BUSY_SWEEP_DISABLED=True):
        schedules_sync()
        again = schedules_sync()
        due = schedules_mark_due()

    assert sorted(declared()) == [name for name in NAMES if name != "scheduler.phantom_busy_sweep"]
    assert "scheduler.phantom_busy_sweep" not in {row.name for row in again}
    assert due == len(SCHEDULES) - 1
    schedules_sync()
    assert "scheduler.phantom_busy_sweep" in declared()


# --- what migrate prints -----------------------------------------------------------------------

SYNCED_LINES = [
    "schedule pending_uploads.sweep {}: pending_uploads.tasks.sweep_pending_uploads every 5 min",
    "schedule scheduler.phantom_busy_sweep {}: scheduler.tasks.sweep_phantom_busy every 5 min",
    "schedule molecule.activity_sweep {}: molecule.tasks.sweep_activity every 1 h",
    "schedule molecule.workspace_prune {}: molecule.tasks.prune_workspaces every 1 h",
]
# Whether the rows exist depends on what earlier tests left in the database.
VERBS = ("created", "updated")


@pytest.mark.django_db
def test_migrate_prints_the_schedules_after_its_own_output_and_logs_nothing(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="scheduler.services")
    Schedule.objects.all().delete()
    out, err = StringIO(), StringIO()

    call_command("migrate", stdout=out, stderr=err)

    assert out.getvalue().splitlines()[-len(SYNCED_LINES) - 1 :] == [
        "  No migrations to apply.",
        *(line.format("created") for line in SYNCED_LINES),
    ]
    assert err.getvalue() == ""
    assert [r for r in caplog.records if r.name == "scheduler.services"] == []


@pytest.mark.django_db
def test_quiet_migrate_prints_and_logs_nothing(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="scheduler.services")
    out = StringIO()

    call_command("migrate", verbosity=0, stdout=out)

    assert out.getvalue() == ""
    assert [r for r in caplog.records if r.name == "scheduler.services"] == []
    assert sorted(declared()) == NAMES


@pytest.mark.django_db
def test_a_post_migrate_without_stdout_logs_the_schedules(caplog) -> None:
    # flush sends post_migrate without a stdout; the lines go to the log then.
    caplog.set_level(logging.INFO, logger="scheduler.services")

    schedules_sync_after_migrate(apps.get_app_config("django_q"))

    logged = [r.getMessage() for r in caplog.records if r.name == "scheduler.services"]
    assert logged in ([line.format(verb) for line in SYNCED_LINES] for verb in VERBS)


def test_migrate_in_a_real_process_keeps_stderr_empty(transactional_db) -> None:
    result = run_manage("migrate")

    assert result.returncode == 0, result.stderr
    # Nothing on stderr to cut into migrate's lines; the schedules come last on stdout.
    assert result.stderr == ""
    last = result.stdout.splitlines()[-len(SYNCED_LINES) :]
    assert last in ([line.format(verb) for line in SYNCED_LINES] for verb in VERBS)
