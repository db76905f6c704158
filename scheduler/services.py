"""Schedule upkeep and the phantom-busy sweep: transactions, metrics and logging."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.apps import AppConfig
from django.core.management.base import OutputWrapper
from django.db import DatabaseError, transaction
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django_q.models import Schedule

from molecule.durations import format_duration
from molecule.errors import first_line
from molecule.managers import WorkspaceRef
from molecule.models import MetricTotal, Workspace
from scheduler import conf, metrics
from scheduler.schedules import SCHEDULES

logger = logging.getLogger(__name__)


def _interval_minutes(interval: timedelta) -> int:
    # django-q2 schedules have minute resolution.
    return max(1, round(interval.total_seconds() / 60))


def _log(line: str) -> None:
    logger.info("%s", line)


def schedules_sync(
    *, using: str = "default", echo: Callable[[str], object] = _log
) -> list[Schedule]:
    """Upsert every declared schedule by name; changed intervals take effect at once.

    Each schedule's outcome is one line to ``echo``, logged at INFO by default.
    """
    now = timezone.now()
    synced = []
    for spec in SCHEDULES:
        if not spec.enabled():
            removed, _ = Schedule.objects.using(using).filter(name=spec.name).delete()
            echo(f"schedule {spec.name} disabled{', removed' if removed else ''}")
            continue
        minutes = _interval_minutes(spec.interval())
        schedule, created = Schedule.objects.using(using).update_or_create(
            name=spec.name,
            defaults={
                "func": spec.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
            create_defaults={
                "func": spec.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
                "next_run": now + timedelta(minutes=minutes),
            },
        )
        # A shortened interval should not wait out the old, longer one.
        if schedule.next_run and schedule.next_run > now + timedelta(minutes=minutes):
            schedule.next_run = now + timedelta(minutes=minutes)
            schedule.save(update_fields=["next_run"])
        echo(
            f"schedule {spec.name} {'created' if created else 'updated'}: {spec.func} "
            f"every {format_duration(timedelta(minutes=minutes))}"
        )
        synced.append(schedule)
    return synced


def schedules_sync_after_migrate(
    sender: AppConfig,
    using: str = "default",
    verbosity: int = 1,
    stdout: OutputWrapper | None = None,
    **kwargs: Any,
) -> None:
    # post_migrate fires once per app with models; django_q's owns the schedule table.
    if sender.label != "django_q":
        return
    # migrate's lines go through its stdout, these after them: a log line on stderr would cut
    # into its "Applying ... OK" output. -v 0 is quiet; a sender without stdout (flush) logs.
    if verbosity < 1:
        schedules_sync(using=using, echo=lambda line: None)
    elif stdout is not None:
        schedules_sync(using=using, echo=stdout.write)
    else:
        schedules_sync(using=using)


def schedules_mark_due() -> int:
    """Make every declared schedule due now, so a starting worker sweeps at its first tick."""
    schedules_sync()
    return Schedule.objects.filter(
        name__in=[spec.name for spec in SCHEDULES if spec.enabled()]
    ).update(next_run=timezone.now())


class PhantomBusySweepError(Exception):
    """The phantom-busy sweep failed."""


@dataclass(frozen=True)
class PhantomBusyReport:
    workspaces: list[WorkspaceRef]
    stale_after: timedelta
    dry_run: bool

    def job_result(self) -> dict[str, Any]:
        return {"reset": len(self.workspaces)}


def workspaces_reset_phantom_busy(
    *, stale_after: timedelta | None = None, dry_run: bool = False
) -> PhantomBusyReport:
    """Reset active_tasks of busy workspaces with no activity for ``stale_after``."""
    stale = conf.phantom_busy_stale_after() if stale_after is None else stale_after
    try:
        with transaction.atomic():
            reset = Workspace.objects.reset_phantom_busy(
                stale, counter=metrics.phantom_busy_resets.name, dry_run=dry_run
            )
    except Exception as exc:
        if not dry_run:
            phantom_busy_count_error()
        logger.error("phantom-busy sweep failed: %s", first_line(exc))
        raise PhantomBusySweepError(f"phantom-busy sweep failed: {first_line(exc)}") from exc
    if dry_run:
        return PhantomBusyReport(reset, stale, dry_run)
    # The UPDATE has committed, and counted the resets in the same statement: log each row.
    for ref in reset:
        logger.info(
            "phantom-busy reset workspace id=%s name=%s: no activity for %s",
            ref.id,
            ref.name,
            format_duration(stale),
        )
    if reset:
        logger.info(
            "phantom-busy sweep reset %d workspace%s (stale after %s)",
            len(reset),
            pluralize(len(reset)),
            format_duration(stale),
        )
    try:
        MetricTotal.objects.gauges_set(
            {(metrics.workspaces_active.name, ""): Workspace.objects.count_active()}
        )
    except DatabaseError:
        # The resets have committed and been counted; a stale gauge must not undo that.
        logger.exception("could not refresh the molecule_workspaces_active gauge")
    return PhantomBusyReport(reset, stale, dry_run)


def phantom_busy_count_error() -> None:
    """Count a failed run in its own statement (the failed UPDATE rolled back its count)."""
    try:
        MetricTotal.objects.add(metrics.phantom_busy_sweep_errors.name)
    except DatabaseError as exc:
        # One line: a command that failed because the database is away must print one line.
        logger.error("could not count the failed phantom-busy sweep: %s", first_line(exc))
