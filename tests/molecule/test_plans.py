"""The activity feed's cursor lookup and pages on a realistically large table use indexes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from molecule.models import ActivityLog
from tests.helpers import run_sql

ROWS = 200_000
WORKSPACES = 200

# 200 workspaces of 1,000 rows each, a day apart per workspace, several types.
FILL_SQL = """
WITH ws AS (
    INSERT INTO workspaces (id, name, token_hash)
    SELECT gen_random_uuid(), 'plan-' || n, repeat('0', 64) FROM generate_series(1, %(ws)s) AS n
    RETURNING id
), numbered AS (
    SELECT id, row_number() OVER () AS k FROM ws
)
INSERT INTO activity_logs (workspace_id, activity_type, created_at)
SELECT numbered.id,
       (ARRAY['a2a_receive', 'a2a_send', 'agent_log'])[1 + g %% 3],
       now() - make_interval(secs => (%(rows)s - g) * 0.4)
  FROM generate_series(1, %(rows)s) AS g
  JOIN numbered ON numbered.k = 1 + g %% %(ws)s
"""


def plan_nodes(sql: str) -> Iterator[dict]:
    ((plan,),) = run_sql("EXPLAIN (FORMAT JSON) " + sql)
    plan = plan if isinstance(plan, list) else json.loads(plan)
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


@pytest.mark.django_db
def test_cursor_lookup_and_pages_use_indexes_at_200k_rows():
    run_sql(FILL_SQL, {"ws": WORKSPACES, "rows": ROWS})
    run_sql("ANALYZE activity_logs")
    workspace_id, cursor_id = run_sql(
        "SELECT workspace_id, id FROM activity_logs ORDER BY id OFFSET %s LIMIT 1", [ROWS // 2]
    )[0]

    with CaptureQueriesContext(connection) as queries:
        after_id = ActivityLog.objects.cursor_id(workspace_id, str(cursor_id))
        page = ActivityLog.objects.feed(
            workspace_id, activity_type="a2a_receive", after_id=after_id
        )
        newest = ActivityLog.objects.feed(workspace_id, since_seconds=3600)
        first_page = ActivityLog.objects.feed(workspace_id)
        # The runtime's own poll, with upstream's other filters on top.
        runtime = ActivityLog.objects.feed(
            workspace_id,
            activity_type="a2a_receive",
            peer_id=uuid.uuid4(),
            before=timezone.now(),
            after_id=after_id,
            peer_info=True,
        )
    lookup_sql, page_sql, newest_sql, first_sql, runtime_sql = (
        q["sql"] for q in queries.captured_queries
    )

    assert page and newest and first_page and runtime == []
    for sql in (lookup_sql, page_sql, newest_sql, first_sql, runtime_sql):
        nodes = list(plan_nodes(sql))
        assert all(node["Node Type"] != "Seq Scan" for node in nodes), sql
    lookup_indexes = {node.get("Index Name") for node in plan_nodes(lookup_sql)}
    assert lookup_indexes & {"activity_logs_pkey", "activity_logs_ws_id_idx"}
    # The cursor page and the plain newest-first page read (workspace_id, id) in the feed's
    # order, from the cursor (or the newest row) on, and stop at the limit: nothing to sort.
    for sql, bound in ((page_sql, "id >"), (first_sql, None), (runtime_sql, "id >")):
        nodes = list(plan_nodes(sql))
        [scan] = [n for n in nodes if n.get("Index Name") == "activity_logs_ws_id_idx"]
        assert "workspace_id" in scan["Index Cond"], scan
        assert bound is None or bound in scan["Index Cond"], scan
        # With filters it expects to match little, the planner may gather the range after the
        # cursor and sort what matched; without, it reads in order and stops at the limit.
        assert sql == runtime_sql or all(node["Node Type"] != "Sort" for node in nodes), sql
    # since_secs: the workspace's recent rows by time, then sorted by id (only that range).
    [scan] = [n for n in plan_nodes(newest_sql) if n.get("Index Name", "").startswith("activity")]
    assert scan["Index Name"] == "activity_logs_ws_created_idx", scan
    assert "created_at" in scan["Index Cond"], scan
