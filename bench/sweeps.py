"""The upload sweep at scale: ours (batched, committed per batch) against one unbounded CTE."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from bench import datasets
from bench.config import ACK_RETENTION, SWEEP_BATCH_BYTES, SWEEP_BATCH_SIZE, Scale
from bench.database import BenchDatabases
from bench.stats import Stopwatch, ratio, summary

logger = logging.getLogger("bench")

# The original single statement, kept as the baseline: no batches, no SKIP LOCKED, one
# transaction.
UNBOUNDED_SWEEP_SQL = """
WITH deleted AS (
    DELETE FROM pending_uploads
     WHERE (acked_at IS NOT NULL
            AND acked_at < now() - make_interval(secs => %(retention_seconds)s))
        OR (acked_at IS NULL AND expires_at < now())
 RETURNING acked_at
)
SELECT count(*) FILTER (WHERE acked_at IS NOT NULL),
       count(*) FILTER (WHERE acked_at IS NULL)
  FROM deleted
"""

RETENTION_PARAMS = {"retention_seconds": ACK_RETENTION.total_seconds()}
# The first batch's parameters, as PendingUploadManager._sweep_batches sends them.
FIRST_BATCH_PARAMS = {
    **RETENTION_PARAMS,
    "counter": "molecule_pending_uploads_swept",
    "max_bytes": SWEEP_BATCH_BYTES,
    "acked_from": datetime(1, 1, 1, tzinfo=UTC),
    "expired_from": datetime(1, 1, 1, tzinfo=UTC),
    "acked_limit": SWEEP_BATCH_SIZE,
    "expired_limit": SWEEP_BATCH_SIZE,
}
# What EXPLAIN (ANALYZE, BUFFERS, WAL) counts, per deleted row: where the time goes.
IO_COUNTERS = (
    "Shared Hit Blocks",
    "Shared Read Blocks",
    "Shared Dirtied Blocks",
    "Shared Written Blocks",
    "WAL Records",
    "WAL FPI",
    "WAL Bytes",
)


def upload_dataset(db: BenchDatabases, rows: int) -> str:
    """The name of the template with ``rows`` 1 KiB rows, building it the first time."""
    name = f"up_{rows}"
    if not db.has_template(name):
        logger.info("building %s (%d rows of 1 KiB)", name, rows)
        db.fresh()
        with db.connect() as conn:
            datasets.fill_uploads(conn, rows)
            conn.execute("VACUUM (FREEZE, ANALYZE) pending_uploads")
        db.save_template(name)
    return name


def toast_dataset(db: BenchDatabases, rows: int, size: int) -> str:
    name = f"toast_{rows}"
    if not db.has_template(name):
        logger.info("building %s (%d rows of %d KiB)", name, rows, size // 1024)
        db.fresh()
        with db.connect() as conn:
            datasets.fill_toast_uploads(conn, rows, size)
            conn.execute("VACUUM (FREEZE, ANALYZE) pending_uploads")
        db.save_template(name)
    return name


def eligible_counts(db: BenchDatabases) -> dict[str, int]:
    from pending_uploads.managers import SWEEP_PREVIEW_SQL

    with db.connect() as conn:
        total = conn.execute("SELECT count(*) FROM pending_uploads").fetchone()[0]
        acked, expired = conn.execute(SWEEP_PREVIEW_SQL, RETENTION_PARAMS).fetchone()
    return {"rows": total, "eligible_acked": acked, "eligible_expired": expired}


def run_ours(batch_size: int = SWEEP_BATCH_SIZE) -> dict[str, Any]:
    """PendingUpload.objects.sweep as production runs it; each batch timed via on_batch."""
    from django.db import connection

    from pending_uploads.models import PendingUpload

    connection.ensure_connection()
    batch_ms: list[float] = []
    clock = Stopwatch()
    last = [clock.ms]

    def on_batch(done: Any, number: int) -> None:
        now = clock.ms
        batch_ms.append(now - last[0])
        last[0] = now

    result = PendingUpload.objects.sweep(
        ACK_RETENTION, batch_size=batch_size, batch_bytes=SWEEP_BATCH_BYTES, on_batch=on_batch
    )
    seconds = clock.seconds
    return {
        "seconds": seconds,
        "rows": result.total,
        "batches": len(batch_ms),
        # Statement, commit and the Python around them: an upper bound on the statement.
        "longest_statement_ms": max(batch_ms, default=0.0),
    }


def run_unbounded(db: BenchDatabases) -> dict[str, Any]:
    with db.connect(autocommit=False) as conn:
        conn.execute("SELECT 1")
        conn.commit()
        clock = Stopwatch()
        with conn.transaction():
            acked, expired = conn.execute(UNBOUNDED_SWEEP_SQL, RETENTION_PARAMS).fetchone()
        seconds = clock.seconds
    return {
        "seconds": seconds,
        "rows": acked + expired,
        "batches": 1,
        "longest_statement_ms": seconds * 1000,
    }


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rows = {run["rows"] for run in runs}
    return {
        "rows_deleted": max(rows) if rows else 0,
        "rows_deleted_consistent": len(rows) <= 1,
        "seconds": summary([run["seconds"] for run in runs], 4),
        "rows_per_s": summary([run["rows"] / run["seconds"] for run in runs], 0),
        "batches": max((run["batches"] for run in runs), default=0),
        "longest_statement_ms": summary([run["longest_statement_ms"] for run in runs], 1),
    }


def compare(db: BenchDatabases, dataset: str, reps: int) -> dict[str, Any]:
    """Ours and the unbounded CTE, alternating, each on a fresh copy of ``dataset``."""
    ours: list[dict[str, Any]] = []
    unbounded: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for rep in range(reps):
        order = ("ours", "unbounded") if rep % 2 == 0 else ("unbounded", "ours")
        for variant in order:
            db.restore(dataset)
            if not counts:
                counts = eligible_counts(db)
            run = run_ours() if variant == "ours" else run_unbounded(db)
            (ours if variant == "ours" else unbounded).append(run)
            logger.info("%s %s: %s", dataset, variant, json.dumps(run))
    figure = {**counts, "ours": aggregate(ours), "unbounded": aggregate(unbounded)}
    # Throughput ratio ours : unbounded (1.0 = as fast; the target is >= 0.9).
    figure["throughput_ratio"] = ratio(
        figure["ours"]["rows_per_s"]["median"], figure["unbounded"]["rows_per_s"]["median"]
    )
    return figure


def batch_sizes(db: BenchDatabases, dataset: str, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Ours at other batch sizes (one run each): the throughput/statement-length trade-off."""
    found = []
    for size in sizes:
        db.restore(dataset)
        run = run_ours(size)
        logger.info("%s ours, batch size %d: %s", dataset, size, json.dumps(run))
        found.append(
            {
                "batch_size": size,
                "seconds": round(run["seconds"], 4),
                "rows_per_s": round(run["rows"] / run["seconds"]),
                "batches": run["batches"],
                "longest_statement_ms": round(run["longest_statement_ms"], 1),
            }
        )
    return found


def io_profile(db: BenchDatabases, dataset: str) -> dict[str, Any]:
    """Buffers and WAL per deleted row: our first batch against the unbounded statement."""
    from pending_uploads.managers import SWEEP_BATCH_SQL

    found = {}
    for name, statement, params in (
        ("ours_first_batch", SWEEP_BATCH_SQL, FIRST_BATCH_PARAMS),
        ("unbounded", UNBOUNDED_SWEEP_SQL, RETENTION_PARAMS),
    ):
        db.restore(dataset)
        with db.connect(autocommit=False) as conn:
            explain = "EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) " + statement
            plan = conn.execute(explain, params).fetchone()[0][0]["Plan"]
            conn.rollback()
        deleted = _deleted_rows(plan)
        found[name] = {"rows_deleted": deleted} | {
            key.lower().replace(" ", "_") + "_per_row": round(plan.get(key, 0) / max(deleted, 1), 2)
            for key in IO_COUNTERS
        }
    return found


def _deleted_rows(plan: dict[str, Any]) -> int:
    """The rows the plan's DELETE removed (ours also inserts into metric_totals: not those)."""
    pending = [plan]
    while pending:
        node = pending.pop()
        if node["Node Type"] == "ModifyTable" and node.get("Operation") == "Delete":
            return node["Actual Rows"]
        pending.extend(node.get("Plans", []))
    return 0


def bench_sweep(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    """The headline sweep on the largest table, the curve over every size, other batch sizes."""
    curve = []
    for rows in scale.sweep_sizes:
        curve.append(compare(db, upload_dataset(db, rows), scale.sweep_reps))
    main = upload_dataset(db, scale.main_rows)
    return {
        "upload_sweep": curve[-1],
        "sweep_curve": curve,
        "sweep_batch_sizes": batch_sizes(db, main, scale.batch_sizes),
        "sweep_io": io_profile(db, main),
    }


def bench_toast(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    dataset = toast_dataset(db, scale.toast_rows, scale.toast_bytes)
    figure = compare(db, dataset, scale.sweep_reps)
    figure["row_bytes"] = scale.toast_bytes
    figure["batch_sizes"] = batch_sizes(db, dataset, scale.toast_batch_sizes)
    # Several GiB at full scale: free the disk once measured.
    db.drop_template(dataset)
    return {"toast_sweep": figure}
