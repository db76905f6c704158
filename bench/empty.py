"""The empty sweep: a full-size table with nothing eligible, and the plans that keep it cheap."""

from __future__ import annotations

import json
import logging
from typing import Any

from bench import datasets
from bench.config import ACK_RETENTION, Scale
from bench.database import BenchDatabases
from bench.stats import summary
from bench.sweeps import FIRST_BATCH_PARAMS, run_ours, run_unbounded

logger = logging.getLogger("bench")


def plan_nodes(statement: str, params: dict[str, Any]) -> list[str]:
    """EXPLAIN (FORMAT JSON) through Django's cursor: "Node Type [on index]" for every node."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    nodes: list[str] = []
    pending = [plan[0]["Plan"]]
    while pending:
        node = pending.pop(0)
        label = node["Node Type"]
        if node.get("Index Name"):
            label += f" on {node['Index Name']}"
        elif node.get("Relation Name"):
            label += f" on {node['Relation Name']}"
        nodes.append(label)
        pending.extend(node.get("Plans", []))
    return nodes


def bench_empty(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    from pending_uploads.managers import SWEEP_BATCH_SQL, SWEEP_PREVIEW_SQL

    rows = scale.main_rows
    logger.info("building the empty-sweep table (%d rows, none eligible)", rows)
    db.fresh()
    with db.connect() as conn:
        datasets.fill_uploads(conn, rows, eligible=False)
    db.settle(("pending_uploads",))
    ours = [run_ours()["seconds"] * 1000 for _ in range(scale.empty_runs)]
    unbounded = [run_unbounded(db)["seconds"] * 1000 for _ in range(scale.empty_runs)]
    plans = {
        "sweep_batch": plan_nodes(SWEEP_BATCH_SQL, FIRST_BATCH_PARAMS),
        "sweep_preview": plan_nodes(
            SWEEP_PREVIEW_SQL, {"retention_seconds": ACK_RETENTION.total_seconds()}
        ),
    }
    # Seq Scan on pending_uploads would read every row; a CTE Scan reads the batch only.
    seq_scans = [node for nodes in plans.values() for node in nodes if node.startswith("Seq Scan")]
    return {
        "empty_sweep": {
            "rows": rows,
            "runs": scale.empty_runs,
            "ours_ms": summary(ours, 3),
            "unbounded_ms": summary(unbounded, 3),
            "plans": plans,
            "index_scans_only": not seq_scans,
        }
    }
