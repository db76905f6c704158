"""Reset active_tasks on workspaces that look busy but have been silent too long."""

from __future__ import annotations

from typing import Any

from django.template.defaultfilters import pluralize

from molecule.durations import format_duration
from molecule.management.base import SweepCommand
from scheduler.services import PhantomBusySweepError, workspaces_reset_phantom_busy


class Command(SweepCommand):
    help = (
        "Reset active_tasks and current_task on workspaces that report busy but have had no "
        "activity for the stale threshold, and count them in molecule_phantom_busy_resets_total. "
        "Safe to run from cron, also alongside the scheduled sweep."
    )
    duration_option = "--stale-after"
    duration_help = (
        "Activity silence that makes a busy workspace phantom (90s, 30m, 1h, 2d or "
        "seconds, more than 0); default PHANTOM_BUSY_STALE_AFTER."
    )
    # Every busy workspace has been silent for 0 s: 0 would reset them all.
    duration_positive = True
    error = PhantomBusySweepError

    def sweep(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        report = workspaces_reset_phantom_busy(
            stale_after=options["stale_after"], dry_run=options["dry_run"]
        )
        stale_seconds = int(report.stale_after.total_seconds())
        verb = "would reset" if report.dry_run else "reset"
        count = len(report.workspaces)
        lines = [
            f"{verb} {count} phantom-busy workspace{pluralize(count)} "
            f"(no activity for {format_duration(report.stale_after)})"
        ]
        lines += [f"  {ref.id} {ref.name}" for ref in report.workspaces]
        return (
            "\n".join(lines),
            {
                "reset": len(report.workspaces),
                "workspaces": [{"id": str(ref.id), "name": ref.name} for ref in report.workspaces],
                "stale_after_seconds": stale_seconds,
            },
        )
