"""Delete activity_logs rows older than the retention, in committed batches."""

from __future__ import annotations

from typing import Any

from django.template.defaultfilters import pluralize

from molecule.durations import format_duration
from molecule.management.base import SweepCommand
from molecule.retention import ActivitySweepError
from molecule.services import activity_sweep, activity_sweep_preview


class Command(SweepCommand):
    help = (
        "Sweep activity_logs: delete rows older than the retention in committed batches, and "
        "count them in molecule_activity_logs_swept_total. Safe to run from cron, also while "
        "the scheduled sweep runs: concurrent sweeps share the rows and never count one twice."
    )
    duration_option = "--retention"
    duration_help = (
        "Keep activity rows this long (90s, 30m, 1h, 2d or seconds); default ACTIVITY_RETENTION."
    )
    error = ActivitySweepError

    def sweep(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        run = activity_sweep_preview if options["dry_run"] else activity_sweep
        report = run(retention=options["retention"])
        seconds = int(report.retention.total_seconds())
        verb = "would sweep" if report.dry_run else "swept"
        return (
            f"{verb} {report.deleted} activity row{pluralize(report.deleted)} older than "
            f"{format_duration(report.retention)} in {report.duration_ms:.0f} ms",
            {
                "deleted": report.deleted,
                "batches": report.batches,
                "retention_seconds": seconds,
                "duration_ms": round(report.duration_ms, 3),
            },
        )
