"""Queries on workspaces and their activity log, including the phantom-busy statement."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from django.contrib.postgres.functions import TransactionNow as Now
from django.db import connections, models, router

from molecule.pruning import WorkspacePruneMixin
from molecule.retention import ActivityRetentionMixin
from molecule.tokens import token_hash, token_matches
from molecule.totals import ADD_TO_TOTALS

if TYPE_CHECKING:
    from molecule.models import Workspace

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


# Raw for upstream's upsert in one statement: the first ack inserts, later ones move the mark
# forward only (GREATEST, so a late or repeated ack never moves it back), and RETURNING gives
# the value stored, which may be above the one sent.
INBOX_ACK_SQL = """
INSERT INTO inbox_delivery_state (workspace_id, last_acked_seq, updated_at)
VALUES (%(workspace_id)s, %(acked_seq)s, now())
ON CONFLICT (workspace_id) DO UPDATE
   SET last_acked_seq = GREATEST(inbox_delivery_state.last_acked_seq, EXCLUDED.last_acked_seq),
       updated_at = now()
RETURNING last_acked_seq
"""


class WorkspaceRef(NamedTuple):
    id: uuid.UUID
    name: str


class WorkspaceManager(WorkspacePruneMixin, models.Manager["Workspace"]):
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
        ``token`` is, else None. Read from a with_token_state() row; both are compared."""
        previous = workspace.previous_token_hash if workspace.previous_token_live else None
        current = token_matches(token, workspace.token_hash)
        # Compared even when there is none, so that timing does not tell.
        old = token_matches(token, previous)
        if current:
            return "current"
        return "previous" if old else None

    def authenticate(
        self, workspace_id: uuid.UUID, token: str, *, admin_token: str = ""
    ) -> Workspace | None:
        """Return the workspace when ``token`` is its bearer token or ``admin_token``, else None.

        A removed workspace's own token never authenticates again; ``admin_token`` ('' when
        disabled) opens every workspace that exists. The workspace returned carries
        ``by_admin_token``: True when only the operator token matched, and
        ``by_previous_token``: True for the token from before a rotation, within its overlap.
        The first use of a rotated-to token ends the overlap.
        """
        workspace = self.with_token_state().filter(pk=workspace_id).first()
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
        connection = connections[router.db_for_write(self.model)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return sorted((WorkspaceRef(*row) for row in rows), key=lambda ref: (ref.name, ref.id))


class CursorGone(Exception):
    """A since_id that is not a row of this workspace: pruned, foreign, missing or malformed."""


class ActivityLogManager(ActivityRetentionMixin, models.Manager):
    def cursor_id(self, workspace_id: uuid.UUID, since_id: str) -> int:
        """The id ``since_id`` names when it is a row of this workspace, or raise CursorGone."""
        # Ids are bigints; anything else cannot name a row, so it is as gone as a pruned one.
        if not since_id.isascii() or not since_id.isdigit() or len(since_id) > 19:
            raise CursorGone
        row_id = int(since_id)
        if row_id >= 2**63 or not self.filter(workspace_id=workspace_id, id=row_id).exists():
            raise CursorGone
        return row_id

    def feed(
        self,
        workspace_id: uuid.UUID,
        *,
        activity_type: str | None = None,
        source: str | None = None,
        peer_id: uuid.UUID | None = None,
        before: datetime | None = None,
        after_id: int | None = None,
        since_seconds: int | None = None,
        limit: int = 100,
        peer_info: bool = False,
    ) -> list:
        """One page of the feed: oldest first strictly after ``after_id``, else newest first.

        The feed's order is the id, which the database assigns in commit order per workspace
        (see ActivityLog), so "after the cursor" is just a larger id. ``source`` is "canvas"
        (source_id IS NULL) or "agent"; ``peer_id`` matches the sender or the recipient;
        ``before`` and ``since_seconds`` bound created_at. Every filter ANDs. With
        ``peer_info``, each row carries ``peer_name``: its source workspace's name, or None.
        """
        rows = self.filter(workspace_id=workspace_id)
        if activity_type:
            rows = rows.filter(activity_type=activity_type)
        if source is not None:
            rows = rows.filter(source_id__isnull=source == "canvas")
        if peer_id is not None:
            rows = rows.filter(models.Q(source_id=peer_id) | models.Q(target_id=peer_id))
        if before is not None:
            rows = rows.filter(created_at__lt=before)
        if since_seconds is not None:
            rows = rows.filter(created_at__gte=Now() - timedelta(seconds=since_seconds))
        if peer_info:
            # Through the app registry: models.py imports this module, so it cannot import back.
            workspaces = self.model._meta.apps.get_model("molecule", "Workspace").objects
            # order_by(): the primary key finds at most one; Workspace's default ordering
            # would add a sort to every row's lookup.
            name = workspaces.filter(pk=models.OuterRef("source_id")).order_by().values("name")
            rows = rows.annotate(peer_name=models.Subquery(name[:1]))
        if after_id is None:
            return list(rows.order_by("-id")[:limit])
        return list(rows.filter(id__gt=after_id).order_by("id")[:limit])


class InboxDeliveryStateManager(models.Manager):
    def ack(self, workspace_id: uuid.UUID, acked_seq: int) -> int:
        """Record that the workspace's poller has every row up to ``acked_seq``; return the
        stored mark (the larger of it and any earlier ack)."""
        connection = connections[router.db_for_write(self.model)]
        with connection.cursor() as cursor:
            cursor.execute(INBOX_ACK_SQL, {"workspace_id": workspace_id, "acked_seq": acked_seq})
            return cursor.fetchone()[0]
