"""Queries on the activity feed and its acknowledgements: the poll, and the ack's upsert."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import models

from molecule.managers.cursors import RoutedCursorsMixin
from molecule.managers.workspaces import CREDENTIAL_FIELDS, CREDENTIALS_COLUMNS
from molecule.retention import ActivityRetentionMixin

if TYPE_CHECKING:
    from molecule.models import Workspace

# The columns the answer shows, named one by one (a prepared statement's result must keep its
# shape whatever later migrations add), each row with its source workspace's name when
# peer_info asks for it (a probe of the primary key per row, never a join that could read
# the whole table).
_FEED_COLUMNS = """
       a.id, a.activity_type, a.source_id, a.target_id, a.method, a.summary, a.request_body,
       a.response_body, a.duration_ms, a.status, a.error_detail, a.created_at
"""
_FEED_PEER_NAME = """
       (SELECT p.name FROM workspaces AS p WHERE %(peer_info)s AND p.id = a.source_id)
       AS peer_name
"""
# Every filter is a parameter that is NULL when unused, so one statement text serves every
# poll; they AND together.
_FEED_FILTERS = """
          AND (%(activity_type)s::text IS NULL OR a.activity_type = %(activity_type)s)
          AND (%(source)s::text IS NULL OR (a.source_id IS NULL) = (%(source)s = 'canvas'))
          AND (%(peer_id)s::uuid IS NULL OR a.source_id = %(peer_id)s
               OR a.target_id = %(peer_id)s)
          AND (%(before)s::timestamptz IS NULL OR a.created_at < %(before)s)
          AND (%(since_seconds)s::integer IS NULL
               OR a.created_at >= now() - make_interval(secs => %(since_seconds)s))
"""

# The poll (a since_id cursor), in one round trip: the workspace's credentials (the API's
# authentication reads nothing else), whether the cursor is a row of this workspace, and the
# page after it, oldest first. Raw for that one statement, and prepared: an idle poller sends
# it every few seconds, and planning it would cost about as much as running it. A workspace
# that does not exist gives no row; a cursor that is not its row gives no page.
# Prepared, PostgreSQL plans the first five runs with their values, then compares the cost of
# one generic plan (made without values) with theirs, and keeps it only if it is no dearer;
# else it plans every run anew, which cost a head poll 0.4 ms instead of 0.17 ms. Two
# phrasings make the generic plan both right and kept (tests/molecule/test_plans.py):
# - the filters, asked as "CASE ... END IS NOT NULL": without values the planner cannot fold
#   the unused ones away and would take them to keep one row in hundreds, then gather the
#   whole range after the cursor and sort it (O(backlog) per poll); this way the condition
#   has no estimate of its own, and the plan reads activity_logs_ws_id_idx in order from the
#   cursor and stops at the limit;
# - the range closed by id_ceiling (the largest bigint, so always true): with both ends
#   unknown the planner expects a narrow range, as a poll at the head finds, so the generic
#   plan costs what the custom ones do.
FEED_AFTER_SQL = f"""
SELECT {CREDENTIALS_COLUMNS}, c.found, {_FEED_COLUMNS}, a.peer_name
  FROM workspaces AS w
 CROSS JOIN LATERAL (
       SELECT EXISTS (
              SELECT FROM activity_logs WHERE workspace_id = w.id AND id = %(after_id)s
       ) AS found
       ) AS c
  LEFT JOIN LATERAL (
       SELECT {_FEED_COLUMNS}, {_FEED_PEER_NAME}
         FROM activity_logs AS a
        WHERE c.found AND a.workspace_id = w.id
          AND a.id > %(after_id)s AND a.id <= %(id_ceiling)s
          AND (CASE WHEN true {_FEED_FILTERS} THEN true END) IS NOT NULL
        ORDER BY a.id
        LIMIT %(limit)s
       ) AS a ON true
 WHERE w.id = %(workspace_id)s
 ORDER BY a.id
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# The first page (no cursor): the newest rows first. Same shape, not prepared: planned with
# each poll's values, which fold the unused filters away, so since_secs reads
# activity_logs_ws_created_idx over its window only. Pollers send it once, at start.
FEED_NEWEST_SQL = f"""
SELECT {CREDENTIALS_COLUMNS}, true, {_FEED_COLUMNS}, a.peer_name
  FROM workspaces AS w
  LEFT JOIN LATERAL (
       SELECT {_FEED_COLUMNS}, {_FEED_PEER_NAME}
         FROM activity_logs AS a
        WHERE a.workspace_id = w.id {_FEED_FILTERS}
        ORDER BY a.id DESC
        LIMIT %(limit)s
       ) AS a ON true
 WHERE w.id = %(workspace_id)s
 ORDER BY a.id DESC
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

_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class FeedFilters:
    """The feed's filters; every one ANDs with the others, None leaves it out."""

    activity_type: str | None = None
    # "canvas" (source_id IS NULL) or "agent".
    source: str | None = None
    # The sender (source_id) or the recipient (target_id).
    peer_id: uuid.UUID | None = None
    # created_at strictly before.
    before: datetime | None = None
    # created_at within the last N seconds.
    since_seconds: int | None = None
    limit: int = 100
    # Read each row's source workspace's name too.
    peer_info: bool = False


class FeedRow(NamedTuple):
    id: int
    activity_type: str
    source_id: uuid.UUID | None
    target_id: uuid.UUID | None
    method: str
    summary: str
    request_body: Any
    response_body: Any
    duration_ms: int | None
    status: str
    error_detail: str | None
    created_at: datetime
    # The source workspace's name, read only with peer_info (None without, or when absent).
    peer_name: str | None

    @property
    def seq(self) -> int:
        return self.id


class FeedPage(NamedTuple):
    # The workspace's credentials (Workspace.objects.admit decides), None when it does not exist.
    workspace: Workspace | None
    # False when the since_id cursor names no row of this workspace.
    cursor_found: bool
    rows: list[FeedRow]


def cursor_value(since_id: str) -> int | None:
    """The row id a since_id names, or None when it cannot name one (not a bigint)."""
    # ASCII digits only: int() would also take " 5", "+5", "5_0" and Arabic-Indic digits.
    if not since_id.isascii() or not since_id.isdigit() or len(since_id) > 19:
        return None
    value = int(since_id)
    return value if value <= _BIGINT_MAX else None


class ActivityLogManager(RoutedCursorsMixin, ActivityRetentionMixin, models.Manager):
    def feed(
        self, workspace_id: uuid.UUID, *, since_id: str | None, filters: FeedFilters
    ) -> FeedPage:
        """The workspace's credentials and one page of its feed, in one statement.

        With ``since_id``: the rows strictly after that row, oldest first; ``cursor_found`` is
        False (and the page empty) when it names no row of this workspace. Without: the
        newest rows first. The feed's order is the id, which the database assigns in commit
        order per workspace (see ActivityLog), so "after the cursor" is just a larger id.
        """
        params = {
            "workspace_id": workspace_id,
            "activity_type": filters.activity_type,
            "source": filters.source,
            "peer_id": filters.peer_id,
            "before": filters.before,
            "since_seconds": filters.since_seconds,
            "limit": filters.limit,
            "peer_info": filters.peer_info,
        }
        if since_id is None:
            sql, prepare = FEED_NEWEST_SQL, False
        else:
            # A cursor that cannot name a row matches none: found is false, as for a pruned one.
            sql, prepare = FEED_AFTER_SQL, True
            params["after_id"] = cursor_value(since_id)
            params["id_ceiling"] = _BIGINT_MAX
        with self._binary_cursor() as cursor:
            cursor.execute(sql, params, binary=True, prepare=prepare)
            found = cursor.fetchall()
        if not found:
            return FeedPage(None, False, [])
        workspaces = self.model._meta.get_field("workspace").related_model.objects
        first = found[0]
        credentials = len(CREDENTIAL_FIELDS)
        return FeedPage(
            workspaces.from_credentials(first[:credentials]),
            first[credentials],
            [FeedRow(*row[credentials + 1 :]) for row in found if row[credentials + 1] is not None],
        )


class InboxDeliveryStateManager(RoutedCursorsMixin, models.Manager):
    def ack(self, workspace_id: uuid.UUID, acked_seq: int) -> int:
        """Record that the workspace's poller has every row up to ``acked_seq``; return the
        stored mark (the larger of it and any earlier ack)."""
        with self._binary_cursor() as cursor:
            cursor.execute(
                INBOX_ACK_SQL,
                {"workspace_id": workspace_id, "acked_seq": acked_seq},
                prepare=True,
            )
            return cursor.fetchone()[0]
