"""Report the bucket's objects that no pending upload names; delete the old ones on --delete."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from molecule.management.base import CronCommand, duration_argument
from pending_uploads.services import ReapError, uploads_objects_reap


class Command(CronCommand):
    help = (
        "List the objects under PENDING_UPLOADS_S3_PREFIX that no pending_uploads row and no "
        "queued delete names (uploads that died between their PUT and their commit) and "
        "report their count, bytes and the oldest. With --delete, delete those older than "
        "the grace period; younger ones may be uploads in flight. Safe to run from cron, "
        "beside the service and the sweep. The prefix must belong to this database alone."
    )
    error = ReapError

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=duration_argument(positive=False),
            default=None,
            metavar="DURATION",
            help="Only orphans older than this are deleted (90s, 30m, 1h, 2d or seconds); "
            "default PENDING_UPLOADS_REAP_GRACE.",
        )
        parser.add_argument(
            "--delete", action="store_true", help="Delete the orphans older than the grace."
        )
        super().add_arguments(parser)

    def run(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        report = uploads_objects_reap(grace=options["grace"], delete=options["delete"])
        oldest = report.oldest.isoformat() if report.oldest else None
        summary = (
            f"{report.orphans} orphaned of {report.listed} objects, {report.orphan_bytes} "
            f"bytes, oldest {oldest or '-'}; {report.reapable} past the grace"
        )
        if options["delete"]:
            summary += f", {report.deleted} deleted, {report.failed} failed"
        return summary, {
            "listed": report.listed,
            "orphans": report.orphans,
            "orphan_bytes": report.orphan_bytes,
            "oldest": oldest,
            "reapable": report.reapable,
            "deleted": report.deleted,
            "failed": report.failed,
            "delete": options["delete"],
        }
