"""The bucket's rows: its sweep with the outbox drain, and worker memory through it."""

from __future__ import annotations

from typing import Any

from bench.report.api import memory_rows
from bench.report.rows import Row, one, stat


def bucket_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "bucket_sweep" in figures:
        sweep = figures["bucket_sweep"]
        eligible = sweep["eligible_acked"] + sweep["eligible_expired"]
        head = f"Bucket sweep ({sweep['rows']:,} rows, {eligible:,} eligible)"
        rows.append(stat(f"{head}: SQL batches", sweep["sql"]["seconds"], "s"))
        rows.append(stat("  object deletes (outbox drain)", sweep["drain"]["seconds"], "s"))
        rows.append(stat("  together", sweep["total"]["seconds"], "s"))
        rows.append(
            stat("  unbounded CTE, bytes inline", sweep["unbounded_inline"]["seconds"], "s")
        )
        rows.append(stat("  throughput, SQL batches", sweep["sql"]["rows_per_s"], "rows/s"))
        rows.append(stat("  throughput, together", sweep["total"]["rows_per_s"], "rows/s"))
        rows.append(
            stat(
                "  throughput, unbounded inline", sweep["unbounded_inline"]["rows_per_s"], "rows/s"
            )
        )
        rows.append(one("  SQL batches : unbounded inline", sweep["sql_throughput_ratio"], "x"))
        rows.append(one("  together : unbounded inline", sweep["throughput_ratio"], "x"))
        rows.append(stat("  object deletes/s", sweep["drain"]["objects_per_s"], "objects/s"))
        rows.append(stat("  longest SQL batch", sweep["sql"]["longest_statement_ms"], "ms"))
        rows.append(
            stat(
                "  longest statement, unbounded inline",
                sweep["unbounded_inline"]["longest_statement_ms"],
                "ms",
            )
        )
        rows.append(
            stat(
                "  WAL per deleted row, SQL batches (server)",
                sweep["wal_bytes_per_row"]["sql"],
                "B",
            )
        )
        rows.append(
            stat(
                "  WAL per deleted row, unbounded inline (server)",
                sweep["wal_bytes_per_row"]["unbounded_inline"],
                "B",
            )
        )
        for name, counters in sweep["statement_io"].items():
            head = f"  per row, {name.replace('_', ' ')} (EXPLAIN)"
            rows.append(one(f"{head}: WAL bytes", counters["wal_bytes_per_row"], "B"))
            rows.append(one("    WAL full-page images", counters["wal_fpi_per_row"]))
        rows.append(one("  objects left in the bucket", sweep["drain"]["objects_left"]))
    if "bucket_memory" in figures:
        memory = figures["bucket_memory"]
        rows += memory_rows(f"Worker memory through the bucket, {memory['file_mib']:g} MiB", memory)
    return rows
