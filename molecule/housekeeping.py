"""Housekeeping of abandoned workspaces: the prune the schedule and prune_workspaces run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError
from django.template.defaultfilters import pluralize

from molecule import conf, metrics, quotas
from molecule.durations import format_duration
from molecule.errors import first_line
from molecule.jobs import failure_count
from molecule.models import Workspace
from molecule.pruning import PruneError, PruneResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkspacePruneReport:
    pruned: int
    batches: int
    idle_for: timedelta
    # Quota usage counters of ended windows, deleted by the same run (None for a dry run).
    usage_windows: int | None
    # Time spent in the prune statements themselves.
    duration_ms: float
    dry_run: bool

    def job_result(self) -> dict[str, Any]:
        return {"pruned": self.pruned, "usage_windows": self.usage_windows}


def workspaces_prune_preview(*, idle_for: timedelta | None = None) -> WorkspacePruneReport:
    """Count the workspaces the prune would delete; delete nothing."""
    idle = conf.workspace_prune_after() if idle_for is None else idle_for
    started = time.perf_counter()
    try:
        count = Workspace.objects.prune_preview(idle)
    except DatabaseError as exc:
        logger.error("workspace prune (dry run) failed: %s", first_line(exc))
        raise PruneError(
            f"workspace prune (dry run) failed: {first_line(exc)}", PruneResult(0, 0)
        ) from exc
    return WorkspacePruneReport(count, 0, idle, None, (time.perf_counter() - started) * 1000, True)


def workspaces_prune(*, idle_for: timedelta | None = None) -> WorkspacePruneReport:
    """Delete the workspaces that registered and never came back, then ended quota windows.

    Each batch counts itself in molecule_workspaces_pruned_total as it commits. A failure adds
    the error outcome, is logged and raised as PruneError with what was pruned before it.
    """
    idle = conf.workspace_prune_after() if idle_for is None else idle_for
    started = time.perf_counter()
    result = PruneResult(0, 0)
    try:
        result = Workspace.objects.prune(
            idle,
            counter=metrics.workspaces_pruned.name,
            batch_size=conf.workspace_prune_batch_size(),
        )
        windows = quotas.quota_windows_prune()
    except (PruneError, DatabaseError) as exc:
        if isinstance(exc, PruneError):
            result = exc.partial
        workspaces_prune_count_error()
        logger.error(
            "workspace prune failed after %d workspaces deleted: %s",
            result.pruned,
            first_line(exc),
        )
        if isinstance(exc, PruneError):
            raise
        raise PruneError(f"workspace prune failed: {first_line(exc)}", result) from exc
    duration_ms = (time.perf_counter() - started) * 1000
    logger.info(
        "workspace prune: %d workspace%s idle for %s deleted in %d batch%s, "
        "%d quota window%s, %.1f ms",
        result.pruned,
        pluralize(result.pruned),
        format_duration(idle),
        result.batches,
        pluralize(result.batches, "es"),
        windows,
        pluralize(windows),
        duration_ms,
    )
    return WorkspacePruneReport(result.pruned, result.batches, idle, windows, duration_ms, False)


def workspaces_prune_count_error() -> None:
    """Count a failed run in its own statement (the failed batch rolled back its count)."""
    failure_count(metrics.workspaces_pruned.name, "error", "workspace prune")
