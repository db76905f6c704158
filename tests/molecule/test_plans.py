"""The activity feed's statements on a realistically large table use indexes, prepared or not."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from molecule.managers import FEED_AFTER_SQL, FEED_NEWEST_SQL, FeedFilters
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


# The poll's prepared statement (its text has $n for each parameter), by how it was planned.
KEPT_PLANS_SQL = """
SELECT generic_plans, custom_plans FROM pg_prepared_statements
 WHERE statement LIKE '%%CROSS JOIN LATERAL%%' AND statement LIKE '%%$1%%'
"""


def plan_nodes(sql: str, params: Any = None) -> Iterator[dict]:
    ((plan,),) = run_sql("EXPLAIN (FORMAT JSON) " + sql, params)
    plan = plan if isinstance(plan, list) else json.loads(plan)
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


def generic_plan_nodes(sql: str, params: dict[str, Any]) -> list[dict]:
    """The plan a prepared statement keeps once PostgreSQL settles on a generic plan: one
    that holds for every parameter value, since it is planned without them."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", number, sql)
    run_sql("SET plan_cache_mode = force_generic_plan")
    run_sql(f"PREPARE feed_plan AS {prepared}")
    try:
        arguments = ", ".join(["%s"] * len(names))
        return list(plan_nodes(f"EXECUTE feed_plan({arguments})", [params[name] for name in names]))
    finally:
        run_sql("DEALLOCATE feed_plan")
        run_sql("RESET plan_cache_mode")


def feed_params(workspace_id: uuid.UUID, **values: Any) -> dict[str, Any]:
    empty = dict.fromkeys(
        ("activity_type", "source", "peer_id", "before", "since_seconds", "after_id"), None
    )
    return {
        **empty,
        "workspace_id": workspace_id,
        "limit": 100,
        "peer_info": False,
        "id_ceiling": 2**63 - 1,
        **values,
    }


def page_scan(nodes: list[dict]) -> dict:
    """The one scan of activity_logs_ws_id_idx that reads the page, under its Limit."""
    [limit] = [node for node in nodes if node["Node Type"] == "Limit"]
    under = [limit]
    scans = []
    while under:
        node = under.pop()
        # Read in the feed's order and stopped at the limit: nothing sorted below it.
        assert node["Node Type"] != "Sort", limit
        if node.get("Index Name") == "activity_logs_ws_id_idx":
            scans.append(node)
        # Not the probes of the cursor's own row or of a peer's name.
        under.extend(
            child
            for child in node.get("Plans", [])
            if child.get("Parent Relationship") not in {"InitPlan", "SubPlan"}
        )
    [scan] = scans
    return scan


@pytest.mark.django_db
def test_the_feed_statements_use_indexes_at_200k_rows():
    run_sql(FILL_SQL, {"ws": WORKSPACES, "rows": ROWS})
    run_sql("ANALYZE activity_logs")
    workspace_id, cursor_id = run_sql(
        "SELECT workspace_id, id FROM activity_logs ORDER BY id OFFSET %s LIMIT 1", [ROWS // 2]
    )[0]
    after = feed_params(workspace_id, after_id=cursor_id, activity_type="a2a_receive")
    # The runtime's own poll, with upstream's other filters on top.
    runtime = {
        **after,
        "peer_id": uuid.uuid4(),
        "before": timezone.now(),
        "peer_info": True,
    }
    plans = {
        # Polls are prepared: PostgreSQL plans the first five with their values, then may
        # keep one generic plan for all. Both must read the index from the cursor on.
        "cursor page, generic": generic_plan_nodes(FEED_AFTER_SQL, after),
        "runtime poll, generic": generic_plan_nodes(FEED_AFTER_SQL, runtime),
        "cursor page": list(plan_nodes(FEED_AFTER_SQL, after)),
        # The first page is planned with its values every time.
        "first page": list(plan_nodes(FEED_NEWEST_SQL, feed_params(workspace_id))),
        "since_secs page": list(
            plan_nodes(FEED_NEWEST_SQL, feed_params(workspace_id, since_seconds=3600))
        ),
    }

    for name, nodes in plans.items():
        assert all(node["Node Type"] != "Seq Scan" for node in nodes), name
        # The workspace (its credentials) by its primary key.
        assert any(node.get("Index Name") == "workspaces_pkey" for node in nodes), name
    for name in ("cursor page, generic", "runtime poll, generic", "cursor page"):
        nodes = plans[name]
        # The cursor's own row, probed by key; then the page from the cursor on.
        assert any(
            node.get("Index Name") in {"activity_logs_pkey", "activity_logs_ws_id_idx"}
            and "= " in node.get("Index Cond", "")
            for node in nodes
        ), name
        scan = page_scan(nodes)
        assert "workspace_id" in scan["Index Cond"] and "id >" in scan["Index Cond"], scan
    scan = page_scan(plans["first page"])
    assert "workspace_id" in scan["Index Cond"] and scan["Scan Direction"] == "Backward", scan
    # since_secs: the workspace's recent rows by time, then sorted by id (only that range).
    [scan] = [
        node
        for node in plans["since_secs page"]
        if node.get("Index Name", "").startswith("activity_logs")
    ]
    assert scan["Index Name"] == "activity_logs_ws_created_idx", scan
    assert "created_at" in scan["Index Cond"], scan
    assert run_sql(FEED_NEWEST_SQL, feed_params(workspace_id, since_seconds=3600 * 24 * 365))

    # And PostgreSQL keeps that generic plan for the runtime's poll at the head, rather than
    # planning every poll anew: its estimate is no dearer than the plans made with values.
    ((head,),) = run_sql(
        "SELECT max(id) FROM activity_logs WHERE workspace_id = %s", [workspace_id]
    )
    poll = FeedFilters(activity_type="a2a_receive", peer_info=True)
    for _ in range(8):
        assert ActivityLog.objects.feed(workspace_id, since_id=str(head), filters=poll).rows == []
    assert run_sql(KEPT_PLANS_SQL) == [(3, 5)]
