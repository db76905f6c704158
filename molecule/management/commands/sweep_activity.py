"""Delete activity_logs rows past the retention horizons, in committed batches."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.template.defaultfilters import pluralize

from molecule.durations import format_duration
from molecule.management.base import SweepCommand, duration_argument
from molecule.retention import ActivitySweepError
from molecule.services.activity_sweep import (
    activity_horizons_clamp_note,
    activity_sweep,
    activity_sweep_preview,
)


class Command(SweepCommand):
    help = (
        "Sweep activity_logs: delete rows the workspace's poller acknowledged once they are "
        "older than the soft retention, and every row older than the retention, in committed "
        "batches; count them in molecule_activity_logs_swept_total. Safe to run from cron, also "
        "while the scheduled sweep runs: concurrent sweeps share the rows and never count one "
        "twice."
    )
    duration_option = "--retention"
    duration_help = (
        "Delete every activity row older than this, acknowledged or not (90s, 30m, 1h, 2d or "
        "seconds); default ACTIVITY_RETENTION."
    )
    error = ActivitySweepError

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--soft-retention",
            type=duration_argument(positive=False),
            default=None,
            metavar="DURATION",
            help="Delete acknowledged activity rows older than this; default "
            "ACTIVITY_SOFT_RETENTION. A --retention below it is raised to it.",
        )

    def sweep(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        run = activity_sweep_preview if options["dry_run"] else activity_sweep
        report = run(retention=options["retention"], soft_retention=options["soft_retention"])
        soft = int(report.horizons.soft.total_seconds())
        hard = int(report.horizons.hard.total_seconds())
        verb = "would sweep" if report.dry_run else "swept"
        summary = (
            f"{verb} {report.deleted} activity row{pluralize(report.deleted)} acknowledged and "
            f"older than {format_duration(report.horizons.soft)}, or older than "
            f"{format_duration(report.horizons.hard)}, in {report.duration_ms:.0f} ms"
        )
        note = activity_horizons_clamp_note(report.horizons)
        return (
            f"{summary}\n{note}" if note else summary,
            {
                "deleted": report.deleted,
                "batches": report.batches,
                "retention_seconds": hard,
                "soft_retention_seconds": soft,
                "retention_clamped": report.horizons.clamped_from is not None,
                "duration_ms": round(report.duration_ms, 3),
            },
        )
