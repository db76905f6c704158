"""Queries on workspaces: their credentials, the admin's last activity, the phantom-busy reset."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import models

from molecule.managers.cursors import RoutedCursorsMixin
from molecule.pruning import WorkspacePruneMixin
from molecule.tokens import token_hash, token_matches
from molecule.totals import ADD_TO_TOTALS

if TYPE_CHECKING:
    from molecule.models import Workspace

# What authentication reads, and what the API's views use of the workspace, in the model's
# field order (Model.from_db takes them so; the rest stay deferred). previous_token_hash is
# read only while its rotation's overlap lasts (CREDENTIALS_COLUMNS), NULL after it.
CREDENTIAL_FIELDS = ("id", "status", "delivery_mode", "token_hash", "previous_token_hash")
# The same columns as SQL, for every statement that authenticates (the poll reads them too).
CREDENTIALS_COLUMNS = """
       w.id, w.status, w.delivery_mode, w.token_hash,
       CASE WHEN w.previous_token_expires_at > now() THEN w.previous_token_hash END
"""

# Raw so that it is prepared once per connection (every API request but registration runs it)
# and reads only the columns authentication and the views use, not the whole row.
CREDENTIALS_SQL = f"""
SELECT {CREDENTIALS_COLUMNS} FROM workspaces AS w WHERE w.id = %(workspace_id)s
"""  # noqa: S608 - composed of constants; every value is a bound parameter

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


class WorkspaceManager(RoutedCursorsMixin, WorkspacePruneMixin, models.Manager["Workspace"]):
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
        workspace = self.model.from_db(self.db, CREDENTIAL_FIELDS, values)
        # The statement read the previous token only while its overlap lasts.
        workspace.previous_token_live = workspace.previous_token_hash is not None
        return workspace

    def with_token_state(self) -> models.QuerySet:
        """Workspaces with ``previous_token_live``: whether the overlap of the last rotation
        is still running, by the database clock."""
        return self.annotate(
            previous_token_live=models.ExpressionWrapper(
                models.Q(previous_token_expires_at__gt=Now()),
                output_field=models.BooleanField(),
            )
        )

    def token_owner(self, workspace: Workspace, token: str) -> str | None:
        """ "current" or "previous" (within the overlap): which of the workspace's tokens
        ``token`` is, else None. Read from a credentials() or with_token_state() row; both
        are compared, so timing does not tell whether a rotation is under way."""
        previous = workspace.previous_token_hash if workspace.previous_token_live else None
        current = token_matches(token, workspace.token_hash)
        old = token_matches(token, previous)
        if current:
            return "current"
        return "previous" if old else None

    def admit(
        self, workspace: Workspace | None, token: str, *, admin_token: str = ""
    ) -> Workspace | None:
        """``workspace`` when ``token`` is its bearer token or ``admin_token``, else None.

        No query but one: ``workspace`` comes from credentials() or a statement that read the
        same columns. A removed workspace's own token never authenticates again;
        ``admin_token`` ('' when disabled) opens every workspace that exists. The workspace
        returned carries ``by_admin_token``: True when only the operator token matched, and
        ``by_previous_token``: True for the token from before a rotation, within its overlap.
        The first use of a rotated-to token ends the overlap (the one write, once).
        """
        usable = workspace is not None and workspace.status != workspace.Status.REMOVED
        # Compare even for an unknown id, so timing does not tell which ids exist; compare the
        # admin token too (against a dummy when disabled), so both tiers cost the same.
        if usable and workspace is not None:
            owner = self.token_owner(workspace, token)
        else:
            owner = None
            token_matches(token, None)
            token_matches(token, None)
        admin = token_matches(token, token_hash(admin_token) if admin_token else None)
        if workspace is None or not (owner or admin):
            return None
        workspace.by_admin_token = owner is None
        workspace.by_previous_token = owner == "previous"
        if owner == "current" and workspace.previous_token_hash is not None:
            self.forget_previous_token(workspace)
        return workspace

    def authenticate(
        self, workspace_id: uuid.UUID, token: str, *, admin_token: str = ""
    ) -> Workspace | None:
        """Return the workspace when ``token`` is its bearer token or ``admin_token``, else None
        (see admit)."""
        return self.admit(self.credentials(workspace_id), token, admin_token=admin_token)

    def forget_previous_token(self, workspace: Workspace) -> None:
        """End a rotation's overlap: the new token has been used."""
        self.filter(pk=workspace.pk, token_hash=workspace.token_hash).update(
            previous_token_hash=None, previous_token_expires_at=None
        )
        workspace.previous_token_hash = workspace.previous_token_expires_at = None

    def rotate_token(
        self, workspace: Workspace, new_hash: str, *, overlap: timedelta
    ) -> datetime | None:
        """Make ``new_hash`` the workspace's token; the end of the old one's overlap, or None
        when a concurrent rotation or removal changed the workspace first.

        Rotated with the current token, that token becomes the previous one for ``overlap``.
        Rotated with the previous one (the answer to the last rotation was lost, its token
        never used), the unused token is replaced and the overlap is not extended.
        """
        rows = self.filter(pk=workspace.pk, token_hash=workspace.token_hash).exclude(
            status=self.model.Status.REMOVED
        )
        if workspace.by_previous_token:
            changed = rows.filter(previous_token_expires_at__gt=Now()).update(token_hash=new_hash)
        else:
            changed = rows.update(
                token_hash=new_hash,
                previous_token_hash=workspace.token_hash,
                previous_token_expires_at=Now() + overlap,
            )
        if not changed:
            return None
        return self.filter(pk=workspace.pk).values_list("previous_token_expires_at", flat=True)[0]

    def inbound_secret_replace(
        self, workspace_id: uuid.UUID, *, expected: str | None, sealed: str
    ) -> bool:
        """Store ``sealed`` if the stored value is still ``expected``; False if it changed.

        Compare-and-set: of two requests minting at once, one secret is stored and the other
        request learns it lost, so no workspace is handed a secret that was overwritten.
        """
        return bool(
            self.filter(pk=workspace_id, platform_inbound_secret_sealed=expected)
            .exclude(status="removed")
            .update(platform_inbound_secret_sealed=sealed)
        )

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
