"""Real gunicorn and qcluster processes: the startup sweep and worker counts on the web /metrics."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from django_q.models import OrmQ, Schedule, Task
from django_q.tasks import async_task

from devtools.processes import ServiceStack, metric_value
from molecule.models import ActivityLog, MetricTotal, Workspace
from scheduler.schedules import SCHEDULES
from scheduler.services import schedules_sync
from tests.helpers import service_stack
from tests.integration.conftest import (
    ACKED_OLD,
    ACKED_RECENT,
    EXPIRED,
    LIVE,
    on_every_web_worker,
    tables_truncate,
    uploads_count_by_kind,
    uploads_insert,
    wait_until,
)

# Transactional: the worker processes must see what the tests commit. The flush after each test
# empties the tables, so each test checks a snapshot or rows it inserted itself.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SWEEP_FUNC = "pending_uploads.tasks.sweep_pending_uploads"
PHANTOM_FUNC = "scheduler.tasks.sweep_phantom_busy"
SWEPT = "molecule_pending_uploads_swept_total"
RESETS = "molecule_phantom_busy_resets_total"
# A bound on the wait for the first scheduler tick, no target. django-q2 ticks 30 s after the
# cluster starts; these clusters run settings that make it tick on the guard loop's first pass.
STARTUP_SWEEP_TIMEOUT = 60.0
PROMPT_SCHEDULER_SETTINGS = "tests.integration.prompt_scheduler_settings"

SEEDED = {ACKED_OLD: 23, EXPIRED: 17, ACKED_RECENT: 11, LIVE: 13}


@dataclass
class Ledger:
    """What the database says the workers deleted and reset so far, across all tests here."""

    stack: ServiceStack
    acked: int = 0
    expired: int = 0
    resets: int = 0
    # Snapshots taken once the startup sweeps finished.
    counts_by_kind: dict[str, int] = field(default_factory=dict)
    active_tasks: dict[uuid.UUID, int] = field(default_factory=dict)
    phantom_ids: set[uuid.UUID] = field(default_factory=set)
    kept_busy_ids: set[uuid.UUID] = field(default_factory=set)
    startup_tasks: list[Task] = field(default_factory=list)
    # A scrape right after the startup sweeps. The counts live in metric_totals, which
    # pytest-django's flush after each test here empties, so later scrapes start from 0.
    startup_metrics: str = ""


def _workspaces_seed() -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Busy workspaces that went silent (phantom) and ones the sweep must leave alone."""

    def make(name: str, **fields: Any) -> Workspace:
        return Workspace.objects.create(name=name, token_hash="0" * 64, **fields)

    phantom = {make(f"phantom-{n}", active_tasks=n + 1, current_task="stuck").id for n in range(4)}
    kept = set()
    for n in range(2):
        talking = make(f"talking-{n}", active_tasks=1, current_task="working")
        ActivityLog.objects.create(workspace=talking, activity_type="a2a_send")
        kept.add(talking.id)
    kept.add(make("removed", active_tasks=3, status=Workspace.Status.REMOVED).id)
    make("idle-0")
    make("idle-1")
    return phantom, kept


def _sweeps_finished(funcs: tuple[str, ...]) -> bool:
    """Every func has a saved result and nothing is left in the broker queue."""
    done = set(Task.objects.filter(func__in=funcs).values_list("func", flat=True))
    return done == set(funcs) and not OrmQ.objects.exists()


@pytest.fixture(scope="module")
def ledger(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledger]:
    """Seed rows, start gunicorn (2 workers) and two qclusters, wait for the startup sweeps."""
    with django_db_blocker.unblock():
        tables_truncate()
        schedules_sync()
        next_runs = dict(Schedule.objects.values_list("name", "next_run"))
        workspace_id = uuid.uuid4()
        for kind, count in SEEDED.items():
            uploads_insert(kind, count, workspace_id)
        phantom_ids, kept_busy_ids = _workspaces_seed()
        workdir = tmp_path_factory.mktemp("stack")
        stack = service_stack(
            workdir,
            web_workers=2,
            qclusters=2,
            extra_env={
                # django-q2 signs queued payloads with SECRET_KEY; tasks enqueued here must verify.
                "SECRET_KEY": settings.SECRET_KEY,
                "DJANGO_SETTINGS_MODULE": PROMPT_SCHEDULER_SETTINGS,
            },
        )
        try:
            stack.start()
            wait_until(
                lambda: _sweeps_finished((SWEEP_FUNC, PHANTOM_FUNC)),
                timeout=STARTUP_SWEEP_TIMEOUT,
                what=lambda: f"the startup sweeps of both schedules\n{stack.log_tail()}",
            )
            yield Ledger(
                stack,
                acked=SEEDED[ACKED_OLD],
                expired=SEEDED[EXPIRED],
                resets=len(phantom_ids),
                phantom_ids=phantom_ids,
                kept_busy_ids=kept_busy_ids,
                counts_by_kind=uploads_count_by_kind(),
                active_tasks=dict(Workspace.objects.values_list("id", "active_tasks")),
                startup_tasks=list(Task.objects.all()),
                startup_metrics=stack.metrics_text(),
            )
        finally:
            stack.stop()
            tables_truncate()
            for name, next_run in next_runs.items():
                Schedule.objects.filter(name=name).update(next_run=next_run)


def test_startup_run_sweeps_without_waiting_for_the_interval(ledger: Ledger) -> None:
    # The schedules' interval is minutes; these rows went at the cluster's first scheduler tick.
    assert all(spec.interval().total_seconds() >= 60 for spec in SCHEDULES)
    counts = ledger.counts_by_kind
    assert counts[ACKED_OLD.name] == 0
    assert counts[EXPIRED.name] == 0
    assert counts[ACKED_RECENT.name] == SEEDED[ACKED_RECENT]
    assert counts[LIVE.name] == SEEDED[LIVE]
    busy = ledger.active_tasks
    assert all(busy[pk] == 0 for pk in ledger.phantom_ids)
    assert all(busy[pk] > 0 for pk in ledger.kept_busy_ids)
    # Even if both clusters ran a sweep, their results add up to exactly the rows deleted.
    sweeps = [t.result for t in ledger.startup_tasks if t.func == SWEEP_FUNC]
    assert sum(r["acked"] for r in sweeps) == SEEDED[ACKED_OLD]
    assert sum(r["expired"] for r in sweeps) == SEEDED[EXPIRED]
    resets = [t.result for t in ledger.startup_tasks if t.func == PHANTOM_FUNC]
    assert sum(r["reset"] for r in resets) == len(ledger.phantom_ids)
    assert all(t.success for t in ledger.startup_tasks)


def test_every_web_worker_shows_the_worker_counts(ledger: Ledger) -> None:
    stack = ledger.stack
    # The qclusters' startup sweeps, as the web /metrics showed them: the rows they deleted.
    startup = ledger.startup_metrics
    assert metric_value(startup, SWEPT, outcome="acked") == SEEDED[ACKED_OLD]
    assert metric_value(startup, SWEPT, outcome="expired") == SEEDED[EXPIRED]
    assert metric_value(startup, SWEPT, outcome="error") == 0
    assert metric_value(startup, RESETS) == len(ledger.phantom_ids)
    stored = MetricTotal.objects.snapshot()
    scrapes = on_every_web_worker(stack, stack.metrics_text, count=10)
    # Every worker serves the same database totals.
    for text in scrapes:
        for outcome in ("acked", "expired", "error"):
            expected = stored.get(("molecule_pending_uploads_swept", outcome), 0.0)
            assert metric_value(text, SWEPT, outcome=outcome) == expected
        assert metric_value(text, RESETS) == stored.get(("molecule_phantom_busy_resets", ""), 0.0)
        for name, kind in ((SWEPT, "counter"), (RESETS, "counter")):
            assert re.search(rf"^# HELP {name} \S.+$", text, re.MULTILINE)
            assert re.search(rf"^# TYPE {name} {kind}$", text, re.MULTILINE)


def test_enqueued_sweep_raises_the_counters(ledger: Ledger) -> None:
    stack = ledger.stack
    before = stack.metrics_text()
    # Rows the sweep must keep, beside any an earlier test in this process left behind (the
    # table is flushed only after a transactional test, which need not have run in between).
    kept = uploads_count_by_kind()
    uploads_insert(ACKED_RECENT, 3)
    uploads_insert(LIVE, 4)
    uploads_insert(ACKED_OLD, 5)
    uploads_insert(EXPIRED, 8)
    task_id = async_task(SWEEP_FUNC)
    task = wait_until(
        lambda: Task.objects.filter(id=task_id).first(),
        timeout=30,
        what=lambda: f"the enqueued sweep\n{stack.log_tail()}",
    )
    assert task.success, task.result
    assert task.result == {"acked": 5, "expired": 8}
    ledger.acked += 5
    ledger.expired += 8
    counts = uploads_count_by_kind()
    assert (counts[ACKED_OLD.name], counts[EXPIRED.name]) == (0, 0)
    assert (counts[ACKED_RECENT.name], counts[LIVE.name]) == (
        kept[ACKED_RECENT.name] + 3,
        kept[LIVE.name] + 4,
    )
    for _ in range(10):
        after = stack.metrics_text()
        assert metric_value(after, SWEPT, outcome="acked") == (
            metric_value(before, SWEPT, outcome="acked") + 5
        )
        assert metric_value(after, SWEPT, outcome="expired") == (
            metric_value(before, SWEPT, outcome="expired") + 8
        )
        assert metric_value(after, SWEPT, outcome="error") == 0
