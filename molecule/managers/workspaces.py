"""Queries on workspaces: their credentials, the admin's last activity, the phantom-busy reset."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import models

from molecule.managers.cursors import RoutedCursorsMixin
from molecule.tokens import token_hash, token_matches
from molecule.totals import ADD_TO_TOTALS

if TYPE_CHECKING:
    from molecule.models import Workspace

# What authentication reads, and what the API's views use of the workspace, in the model's
# field order (Model.from_db takes them so; the rest stay deferred).
CREDENTIAL_FIELDS = ("id", "status", "delivery_mode", "token_hash")

# Raw so that it is prepared once per connection (every API request but registration runs it)
# and reads only the columns authentication and the views use, not the whole row.
CREDENTIALS_SQL = """
SELECT id, status, delivery_mode, token_hash FROM workspaces WHERE id = %(workspace_id)s
"""

# A busy workspace with no activity within the stale window: the reset and its preview share it.
# NOT EXISTS probes activity_logs_ws_created_idx once per busy workspace instead of collecting
# every recent workspace_id (see bench/).
PHANTOM_BUSY_WHERE = """
       w.active_tasks > 0
   AND w.status <> 'removed'
   AND NOT EXISTS (
         SELECT 1 FROM activity_logs AS a
          WHERE a.workspace_id = w.id
            AND a.created_at > now() - make_interval(secs => %(stale_after_seconds)s)
       )
"""

# Raw so that the reset and the list of reset rows are one round trip, with eligibility
# decided by the database clock. The counted CTE adds the resets to metric_totals in the same
# statement, so the counter commits with the UPDATE whichever process runs it.
PHANTOM_BUSY_RESET_SQL = f"""
WITH reset AS (
    UPDATE workspaces AS w
       SET active_tasks = 0, current_task = '', updated_at = now()
     WHERE {PHANTOM_BUSY_WHERE}
    RETURNING w.id, w.name
), increments (metric, label, n) AS (
    SELECT %(counter)s, '', count(*) FROM reset
), counted AS ({ADD_TO_TOTALS})
SELECT id, name FROM reset
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The same predicate, read-only, for --dry-run.
PHANTOM_BUSY_PREVIEW_SQL = f"""
SELECT w.id, w.name
  FROM workspaces AS w
 WHERE {PHANTOM_BUSY_WHERE}
 ORDER BY w.name, w.id
"""  # noqa: S608 - composed of constants; every value is a bound parameter


class WorkspaceRef(NamedTuple):
    id: uuid.UUID
    name: str


class WorkspaceManager(RoutedCursorsMixin, models.Manager["Workspace"]):
    def credentials(self, workspace_id: uuid.UUID) -> Workspace | None:
        """The workspace with only CREDENTIAL_FIELDS loaded, or None when there is none."""
        with self._binary_cursor() as cursor:
            cursor.execute(
                CREDENTIALS_SQL,
                {"workspace_id": workspace_id},
                binary=True,
                prepare=True,
            )
            found = cursor.fetchone()
        return self.from_credentials(found)

    def from_credentials(self, values: Sequence[Any] | None) -> Workspace | None:
        """A Workspace of CREDENTIAL_FIELDS values (as CREDENTIALS_SQL reads them), or None."""
        if values is None or values[0] is None:
            return None
        return self.model.from_db(self.db, CREDENTIAL_FIELDS, values)

    def admit(
        self, workspace: Workspace | None, token: str, *, admin_token: str = ""
    ) -> Workspace | None:
        """``workspace`` when ``token`` is its bearer token or ``admin_token``, else None.

        No query: ``workspace`` comes from credentials() or a statement that read the same
        columns. A removed workspace's own token never authenticates again; ``admin_token``
        ('' when disabled) opens every workspace that exists. The workspace returned carries
        ``by_admin_token``: True when only the operator token matched.
        """
        usable = workspace is not None and workspace.status != workspace.Status.REMOVED
        stored = workspace.token_hash if usable and workspace is not None else None
        # Compare even for an unknown id, so timing does not tell which ids exist; compare the
        # admin token too (against a dummy when disabled), so both tiers cost the same.
        own = token_matches(token, stored)
        admin = token_matches(token, token_hash(admin_token) if admin_token else None)
        if workspace is not None and (own or admin):
            workspace.by_admin_token = not own
            return workspace
        return None

    def authenticate(
        self, workspace_id: uuid.UUID, token: str, *, admin_token: str = ""
    ) -> Workspace | None:
        """Return the workspace when ``token`` is its bearer token or ``admin_token``, else None
        (see admit)."""
        return self.admit(self.credentials(workspace_id), token, admin_token=admin_token)

    def with_last_activity(self) -> models.QuerySet:
        # Through the app registry: models.py imports this module, so it cannot import back.
        activity = self.model._meta.apps.get_model("molecule", "ActivityLog")
        latest = activity.objects.filter(workspace_id=models.OuterRef("pk")).order_by("-created_at")
        return self.annotate(last_activity=models.Subquery(latest.values("created_at")[:1]))

    def count_active(self) -> int:
        return self.exclude(status="removed").count()

    def reset_phantom_busy(
        self, stale_after: timedelta, *, counter: str, dry_run: bool = False
    ) -> list[WorkspaceRef]:
        """Clear active_tasks on busy workspaces silent for ``stale_after``; return them.

        The resets are added to the metric_totals row ``counter`` in the same statement.
        """
        sql = PHANTOM_BUSY_PREVIEW_SQL if dry_run else PHANTOM_BUSY_RESET_SQL
        params = {
            "stale_after_seconds": max(stale_after.total_seconds(), 0.0),
            "counter": counter,
        }
        with self._cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return sorted((WorkspaceRef(*row) for row in rows), key=lambda ref: (ref.name, ref.id))
