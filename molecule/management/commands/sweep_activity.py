"""Delete activity_logs rows older than the retention, in committed batches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from molecule.cli import SweepCommand, duration_argument, first_line
from molecule.retention import ActivitySweepError
from molecule.services import activity_sweep, activity_sweep_preview


class Command(SweepCommand):
    help = (
        "Sweep activity_logs: delete rows older than the retention in committed batches, and "
        "count them in molecule_activity_logs_swept_total. Safe to run from cron, also while "
        "the scheduled sweep runs: concurrent sweeps share the rows and never count one twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--retention",
            type=duration_argument,
            default=None,
            metavar="DURATION",
            help="Keep activity rows this long (90s, 30m, 1h, 2d or seconds); "
            "default ACTIVITY_RETENTION.",
        )
        super().add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        sweep = activity_sweep_preview if options["dry_run"] else activity_sweep
        try:
            report = sweep(retention=options["retention"])
        except ActivitySweepError as exc:
            raise CommandError(first_line(exc), returncode=1) from None
        seconds = int(report.retention.total_seconds())
        verb = "would sweep" if report.dry_run else "swept"
        suffix = " (dry run)" if report.dry_run else ""
        self.emit(
            options,
            f"{verb} {report.deleted} activity rows older than {seconds}s "
            f"in {report.duration_ms:.0f} ms{suffix}",
            {
                "deleted": report.deleted,
                "batches": report.batches,
                "retention_seconds": seconds,
                "duration_ms": round(report.duration_ms, 3),
                "dry_run": report.dry_run,
            },
        )
