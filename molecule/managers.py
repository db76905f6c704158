"""Queries on workspaces and their activity log, including the phantom-busy statement."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from django.db import connections, models, router

from molecule.retention import ActivityRetentionMixin
from molecule.tokens import token_matches
from molecule.totals import ADD_TO_TOTALS

if TYPE_CHECKING:
    from molecule.models import Workspace

# Raw so that the reset and the list of reset rows are one round trip, with eligibility
# decided by the database clock. NOT EXISTS probes activity_logs_ws_created_idx once per
# busy workspace instead of collecting every recent workspace_id (see bench/).
# The counted CTE adds the resets to metric_totals in the same statement, so the counter
# commits with the UPDATE whichever process runs it.
PHANTOM_BUSY_RESET_SQL = f"""
WITH reset AS (
    UPDATE workspaces AS w
       SET active_tasks = 0, current_task = '', updated_at = now()
     WHERE w.active_tasks > 0
       AND w.status <> 'removed'
       AND NOT EXISTS (
             SELECT 1 FROM activity_logs AS a
              WHERE a.workspace_id = w.id
                AND a.created_at > now() - make_interval(secs => %(stale_after_seconds)s)
           )
    RETURNING w.id, w.name
), increments (metric, label, n) AS (
    SELECT %(counter)s, '', count(*) FROM reset
), counted AS ({ADD_TO_TOTALS})
SELECT id, name FROM reset
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The same predicate, read-only, for --dry-run.
PHANTOM_BUSY_PREVIEW_SQL = """
SELECT w.id, w.name
  FROM workspaces AS w
 WHERE w.active_tasks > 0
   AND w.status <> 'removed'
   AND NOT EXISTS (
         SELECT 1 FROM activity_logs AS a
          WHERE a.workspace_id = w.id
            AND a.created_at > now() - make_interval(secs => %(stale_after_seconds)s)
       )
 ORDER BY w.name, w.id
"""


class WorkspaceRef(NamedTuple):
    id: uuid.UUID
    name: str


class WorkspaceManager(models.Manager["Workspace"]):
    def authenticate(self, workspace_id: uuid.UUID, token: str) -> Workspace | None:
        """Return the workspace when ``token`` is its bearer token, else None."""
        workspace = self.filter(pk=workspace_id).first()
        stored = workspace.token_hash if workspace is not None else None
        # Compare even for an unknown id, so timing does not tell which ids exist.
        if token_matches(token, stored) and workspace is not None:
            return workspace
        return None

    def with_last_activity(self) -> models.QuerySet:
        from molecule.models import ActivityLog

        latest = ActivityLog.objects.filter(workspace_id=models.OuterRef("pk")).order_by(
            "-created_at"
        )
        return self.annotate(last_activity=models.Subquery(latest.values("created_at")[:1]))

    def count_active(self) -> int:
        return self.exclude(status="removed").count()

    def reset_phantom_busy(
        self, stale_after: timedelta, *, dry_run: bool = False
    ) -> list[WorkspaceRef]:
        """Clear active_tasks on busy workspaces silent for ``stale_after``; return them.

        The resets are added to molecule_phantom_busy_resets_total in the same statement.
        """
        from scheduler import metrics

        sql = PHANTOM_BUSY_PREVIEW_SQL if dry_run else PHANTOM_BUSY_RESET_SQL
        params = {
            "stale_after_seconds": max(stale_after.total_seconds(), 0.0),
            "counter": metrics.phantom_busy_resets.name,
        }
        connection = connections[router.db_for_write(self.model)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return sorted((WorkspaceRef(*row) for row in rows), key=lambda ref: (ref.name, ref.id))


class ActivityLogManager(ActivityRetentionMixin, models.Manager):
    def for_workspace(
        self,
        workspace_id: uuid.UUID,
        *,
        activity_type: str | None = None,
        since_id: int | None = None,
        limit: int = 100,
    ) -> models.QuerySet:
        """Newest first; ``since_id`` keeps only rows after that id (a poller's cursor)."""
        rows = self.filter(workspace_id=workspace_id)
        if activity_type:
            rows = rows.filter(activity_type=activity_type)
        if since_id is not None:
            rows = rows.filter(id__gt=since_id)
        return rows.order_by("-id")[:limit]
