"""Phantom-busy reset: our NOT EXISTS UPDATE against the NOT IN (SELECT DISTINCT ...) form."""

from __future__ import annotations

import logging
from typing import Any

from bench import datasets
from bench.config import PHANTOM_STALE_AFTER, Scale
from bench.database import BenchDatabases
from bench.empty import plan_nodes
from bench.stats import Stopwatch, ratio, summary

logger = logging.getLogger("bench")

# The obvious alternative: collect every recently active workspace, then exclude them.
NOT_IN_RESET_SQL = """
UPDATE workspaces AS w
   SET active_tasks = 0, current_task = '', updated_at = now()
 WHERE w.active_tasks > 0
   AND w.status <> 'removed'
   AND w.id NOT IN (
         SELECT DISTINCT workspace_id FROM activity_logs
          WHERE created_at > now() - make_interval(secs => %(stale_after_seconds)s)
       )
RETURNING w.id, w.name
"""

PARAMS = {
    "stale_after_seconds": PHANTOM_STALE_AFTER.total_seconds(),
    "counter": "molecule_phantom_busy_resets",
}


def run_ours() -> tuple[float, set[Any]]:
    """Workspace.objects.reset_phantom_busy inside a transaction that is rolled back."""
    from django.db import connection, transaction

    from molecule.models import Workspace
    from scheduler import metrics

    connection.ensure_connection()
    with transaction.atomic():
        clock = Stopwatch()
        reset = Workspace.objects.reset_phantom_busy(
            PHANTOM_STALE_AFTER, counter=metrics.phantom_busy_resets.name
        )
        elapsed = clock.ms
        transaction.set_rollback(True)
    return elapsed, {ref.id for ref in reset}


def run_not_in() -> tuple[float, set[Any]]:
    """The NOT IN form through the same Django cursor, also rolled back."""
    from django.db import connection, transaction

    connection.ensure_connection()
    with transaction.atomic(), connection.cursor() as cursor:
        clock = Stopwatch()
        cursor.execute(NOT_IN_RESET_SQL, PARAMS)
        rows = cursor.fetchall()
        elapsed = clock.ms
        transaction.set_rollback(True)
    return elapsed, {row[0] for row in rows}


def bench_phantom(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    from molecule.managers import PHANTOM_BUSY_RESET_SQL

    logger.info(
        "building the phantom-busy set (%d workspaces, %d activity rows)",
        scale.workspaces,
        scale.activity_rows,
    )
    db.fresh()
    build = Stopwatch()
    with db.connect() as conn:
        expected = datasets.fill_phantom(
            conn, scale.workspaces, scale.activity_rows, PHANTOM_STALE_AFTER
        )
    db.settle(("workspaces", "activity_logs"))
    logger.info("phantom-busy set built in %.0f s", build.seconds)
    ours: list[float] = []
    not_in: list[float] = []
    reset_sets: list[set[Any]] = []
    for rep in range(scale.phantom_reps):
        order = (run_ours, run_not_in) if rep % 2 == 0 else (run_not_in, run_ours)
        for variant in order:
            elapsed, reset = variant()
            (ours if variant is run_ours else not_in).append(elapsed)
            reset_sets.append(reset)
            # The rolled-back UPDATE left dead row versions; clear them so each run starts even.
            with db.connect() as conn:
                conn.execute("VACUUM workspaces")
        logger.info("phantom rep %d: ours %.1f ms, NOT IN %.1f ms", rep, ours[-1], not_in[-1])
    figure = {
        "workspaces": scale.workspaces,
        "activity_rows": scale.activity_rows,
        "phantom_expected": expected,
        "reset_rows": len(reset_sets[0]),
        # Both forms must reset the very same workspaces, or the comparison means nothing.
        "same_rows_reset": all(reset == reset_sets[0] for reset in reset_sets),
        "method": "each statement inside BEGIN ... ROLLBACK; statement time only",
        "ours_ms": summary(ours, 2),
        "not_in_ms": summary(not_in, 2),
        # Time ours : time NOT IN (<= 1 means ours is no slower).
        "time_ratio": ratio(summary(ours)["median"], summary(not_in)["median"]),
        "plans": {
            "not_exists": plan_nodes(PHANTOM_BUSY_RESET_SQL, PARAMS),
            "not_in": plan_nodes(NOT_IN_RESET_SQL, PARAMS),
        },
    }
    return {"phantom_busy": figure}
