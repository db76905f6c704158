"""Reset active_tasks on workspaces that look busy but have been silent too long."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from molecule.cli import SweepCommand, duration_argument, first_line
from scheduler.services import PhantomBusySweepError, workspaces_reset_phantom_busy


class Command(SweepCommand):
    help = (
        "Reset active_tasks and current_task on workspaces that report busy but have had no "
        "activity for the stale threshold, and count them in molecule_phantom_busy_resets_total. "
        "Safe to run from cron, also alongside the scheduled sweep."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--stale-after",
            type=duration_argument,
            default=None,
            metavar="DURATION",
            help="Activity silence that makes a busy workspace phantom (90s, 30m, 1h, 2d or "
            "seconds); default PHANTOM_BUSY_STALE_AFTER.",
        )
        super().add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = workspaces_reset_phantom_busy(
                stale_after=options["stale_after"], dry_run=options["dry_run"]
            )
        except PhantomBusySweepError as exc:
            raise CommandError(first_line(exc), returncode=1) from None
        stale_seconds = int(report.stale_after.total_seconds())
        verb = "would reset" if report.dry_run else "reset"
        lines = [
            f"{verb} {len(report.workspaces)} phantom-busy workspaces "
            f"(no activity for {stale_seconds}s)"
        ]
        lines += [f"  {ref.id} {ref.name}" for ref in report.workspaces]
        self.emit(
            options,
            "\n".join(lines),
            {
                "reset": len(report.workspaces),
                "workspaces": [{"id": str(ref.id), "name": ref.name} for ref in report.workspaces],
                "stale_after_seconds": stale_seconds,
                "dry_run": report.dry_run,
            },
        )
