"""Delete workspaces that registered and never came back, and ended quota usage windows."""

from __future__ import annotations

from typing import Any

from django.template.defaultfilters import pluralize

from molecule.durations import format_duration
from molecule.housekeeping import workspaces_prune, workspaces_prune_preview
from molecule.management.base import SweepCommand
from molecule.pruning import PruneError


class Command(SweepCommand):
    help = (
        "Prune abandoned workspaces: delete those not removed whose last registration or "
        "heartbeat is older than the idle time, with no activity since and no pending uploads, "
        "in committed batches, and count them in molecule_workspaces_pruned_total; then delete "
        "ended quota windows. Removed workspaces are kept, so they stay removed. Safe to run "
        "from cron, also while the scheduled prune runs."
    )
    duration_option = "--idle-for"
    duration_help = (
        "Prune workspaces silent this long (90s, 30m, 1h, 2d or seconds); "
        "default WORKSPACE_PRUNE_AFTER."
    )
    error = PruneError

    def sweep(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        run = workspaces_prune_preview if options["dry_run"] else workspaces_prune
        report = run(idle_for=options["idle_for"])
        seconds = int(report.idle_for.total_seconds())
        verb = "would prune" if report.dry_run else "pruned"
        return (
            f"{verb} {report.pruned} workspace{pluralize(report.pruned)} idle for "
            f"{format_duration(report.idle_for)} in {report.duration_ms:.0f} ms",
            {
                "pruned": report.pruned,
                "batches": report.batches,
                "usage_windows": report.usage_windows,
                "idle_for_seconds": seconds,
                "duration_ms": round(report.duration_ms, 3),
            },
        )
