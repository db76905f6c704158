"""The abandoned-workspace prune: its batch statement and its read-only preview."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from django.db import DatabaseError, connections, models, router, transaction

from molecule.totals import ADD_TO_TOTALS

# Registered (or heard from) long ago, silent since, and holding nothing: a workspace that
# registered and never came back. Removed workspaces are never pruned, so a removed id stays
# removed and can never register again with a fresh token. Pending uploads have no foreign key
# to their workspace; a workspace that still has any is not abandoned.
PRUNABLE_WHERE = """
       w.status <> 'removed'
   AND w.updated_at < now() - make_interval(secs => %(idle_seconds)s)
   AND NOT EXISTS (
         SELECT 1 FROM activity_logs AS a
          WHERE a.workspace_id = w.id
            AND a.created_at >= now() - make_interval(secs => %(idle_seconds)s)
       )
   AND NOT EXISTS (SELECT 1 FROM pending_uploads AS p WHERE p.workspace_id = w.id)
"""

# Raw so that one round trip per batch picks, deletes and counts by the database clock. SKIP
# LOCKED leaves a workspace that a registration or heartbeat holds to the next run, and lets
# concurrent prunes share the rows. Older activity goes with the workspace (ON DELETE CASCADE).
# The counted CTE adds the batch to metric_totals in the same statement.
WORKSPACE_PRUNE_BATCH_SQL = f"""
WITH picked AS (
    SELECT w.id FROM workspaces AS w
     WHERE {PRUNABLE_WHERE}
     ORDER BY w.updated_at
     LIMIT %(batch_size)s
       FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM workspaces WHERE id IN (SELECT id FROM picked) RETURNING id
), increments (metric, label, n) AS (
    SELECT %(counter)s, 'pruned', count(*) FROM deleted
), counted AS ({ADD_TO_TOTALS})
SELECT (SELECT count(*) FROM deleted), (SELECT count(*) FROM picked)
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The same predicate, counted without deleting.
WORKSPACE_PRUNE_PREVIEW_SQL = f"""
SELECT count(*) FROM workspaces AS w WHERE {PRUNABLE_WHERE}
"""  # noqa: S608 - composed of constants; every value is a bound parameter


class PruneResult(NamedTuple):
    pruned: int
    batches: int


class PruneError(Exception):
    """The workspace prune failed; ``partial`` holds what committed batches pruned."""

    def __init__(self, message: str, partial: PruneResult) -> None:
        super().__init__(message)
        self.partial = partial


class WorkspacePruneMixin:
    """For WorkspaceManager: the read/write pair of the abandoned-workspace prune."""

    model: type[models.Model]

    def _prune_cursor(self):
        return connections[router.db_for_write(self.model)].cursor()

    def prune_preview(self, idle_for: timedelta) -> int:
        """How many workspaces prune(idle_for) would delete now."""
        with self._prune_cursor() as cursor:
            cursor.execute(WORKSPACE_PRUNE_PREVIEW_SQL, {"idle_seconds": _seconds(idle_for)})
            return cursor.fetchone()[0]

    def prune(self, idle_for: timedelta, *, counter: str, batch_size: int) -> PruneResult:
        """Delete workspaces idle for ``idle_for`` that hold nothing, in committed batches.

        Each batch adds its count to the ``counter`` row of metric_totals in its own statement.
        Database errors are raised as PruneError carrying what committed batches pruned.
        """
        db = router.db_for_write(self.model)
        params = {
            "idle_seconds": _seconds(idle_for),
            "batch_size": max(batch_size, 1),
            "counter": counter,
        }
        done = PruneResult(0, 0)
        try:
            while True:
                with transaction.atomic(using=db), self._prune_cursor() as cursor:
                    cursor.execute(WORKSPACE_PRUNE_BATCH_SQL, params)
                    pruned, picked = cursor.fetchone()
                done = PruneResult(done.pruned + pruned, done.batches + 1)
                if picked < params["batch_size"]:
                    return done
        except DatabaseError as exc:
            raise PruneError(f"workspace prune failed: {exc}", done) from exc


def _seconds(idle_for: timedelta) -> float:
    return max(idle_for.total_seconds(), 0.0)
