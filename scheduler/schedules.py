"""Every periodic job, declared once. The schedule rows are upserted from here by name."""

from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple

from molecule import conf as molecule_conf
from pending_uploads import conf as uploads_conf
from scheduler import conf


def _always() -> bool:
    return True


class ScheduleSpec(NamedTuple):
    name: str
    # A dotted path that django-q2 resolves when the job runs; a test imports each one.
    func: str
    interval: Callable[[], timedelta]
    # False: the upsert leaves the job out and removes its schedule row if one exists.
    enabled: Callable[[], bool] = _always


SCHEDULES = (
    ScheduleSpec(
        "pending_uploads.sweep",
        "pending_uploads.tasks.sweep_pending_uploads",
        uploads_conf.sweep_interval,
    ),
    ScheduleSpec(
        "scheduler.phantom_busy_sweep",
        "scheduler.tasks.sweep_phantom_busy",
        conf.phantom_busy_sweep_interval,
        enabled=lambda: not conf.phantom_busy_sweep_disabled(),
    ),
    ScheduleSpec(
        "molecule.activity_sweep",
        "molecule.tasks.sweep_activity",
        molecule_conf.activity_sweep_interval,
    ),
    ScheduleSpec(
        "molecule.workspace_prune",
        "molecule.tasks.prune_workspaces",
        molecule_conf.workspace_prune_interval,
    ),
)
