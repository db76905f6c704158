"""Delete acked pending uploads past retention and unacked ones past expires_at."""

from __future__ import annotations

import sys
import time
from typing import Any

from molecule.management.base import SweepCommand
from pending_uploads.managers import SweepError, SweepResult
from pending_uploads.services import uploads_sweep


class Command(SweepCommand):
    help = (
        "Sweep pending_uploads: delete acked rows past the retention and unacked rows past "
        "expires_at, and count them in the swept metrics; with a bucket, delete their objects "
        "too (queued in the same transaction, so none is lost). Safe to run from cron, also while "
        "the scheduled sweep runs: concurrent sweeps share the rows and never count one twice."
    )
    duration_option = "--ack-retention"
    duration_help = (
        "Keep acked rows this long (90s, 30m, 1h, 2d or seconds); "
        "default PENDING_UPLOADS_ACK_RETENTION."
    )
    error = SweepError

    def sweep(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        progress = _Progress() if sys.stderr.isatty() and not options["dry_run"] else None
        try:
            report = uploads_sweep(
                ack_retention=options["ack_retention"],
                dry_run=options["dry_run"],
                on_batch=progress,
            )
        finally:
            if progress is not None:
                progress.finish()
        result, objects = report.result, report.objects
        verb = "would sweep" if report.dry_run else "swept"
        summary = (
            f"{verb} {result.acked} acked, {result.expired} expired in {report.duration_ms:.0f} ms"
        )
        if objects.deleted or objects.failed:
            summary += f"; {objects.deleted} objects deleted, {objects.failed} failed"
        return (
            summary,
            {
                "acked": result.acked,
                "expired": result.expired,
                "duration_ms": round(report.duration_ms, 3),
                "gauges_ms": _rounded(report.gauges_ms),
                "objects_deleted": objects.deleted,
                "object_delete_errors": objects.failed,
                "drain_ms": _rounded(report.drain_ms),
            },
        )


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


class _Progress:
    """Rows deleted so far, batches and rows/s on a terminal's stderr; never on stdout."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.shown = False

    def __call__(self, done: SweepResult, batches: int) -> None:
        if batches < 2:
            return
        rate = done.total / max(time.perf_counter() - self.started, 1e-9)
        sys.stderr.write(f"\r{done.total} rows deleted, {batches} batches, {rate:,.0f} rows/s ")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
