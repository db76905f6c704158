"""The sweeps' rows: upload, TOAST and empty sweeps, batches, I/O, interference, phantom-busy."""

from __future__ import annotations

from typing import Any

from bench.report.rows import Row, one, stat


def sweep_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "upload_sweep" in figures:
        rows += _sweep_rows("Upload sweep", figures["upload_sweep"])
        for point in figures["sweep_curve"][:-1]:
            head = f"  curve {point['rows']:,} rows"
            rows.append(stat(f"{head}: ours", point["ours"]["seconds"], "s"))
            rows.append(stat(f"{head}: unbounded", point["unbounded"]["seconds"], "s"))
    rows += _batch_rows(figures.get("sweep_batch_sizes", []))
    if "sweep_io" in figures:
        for name, counters in figures["sweep_io"].items():
            rows.append(
                one(
                    f"  per row, {name.replace('_', ' ')}: shared blocks read",
                    counters["shared_read_blocks_per_row"],
                )
            )
            rows.append(one("    shared blocks hit", counters["shared_hit_blocks_per_row"]))
            rows.append(one("    WAL records", counters["wal_records_per_row"]))
            rows.append(one("    WAL bytes", counters["wal_bytes_per_row"], "B"))
    if "toast_sweep" in figures:
        kib = figures["toast_sweep"]["row_bytes"] // 1024
        rows += _sweep_rows(f"TOAST sweep, {kib} KiB rows", figures["toast_sweep"])
        rows += _batch_rows(figures["toast_sweep"]["batch_sizes"])
    if "empty_sweep" in figures:
        empty = figures["empty_sweep"]
        head = f"Empty sweep ({empty['rows']:,} rows, {empty['runs']} runs)"
        rows.append(stat(f"{head}: ours", empty["ours_ms"], "ms"))
        rows.append(stat("  unbounded CTE", empty["unbounded_ms"], "ms"))
        rows.append(one("  index scans only", empty["index_scans_only"]))
    if "interference" in figures:
        inter = figures["interference"]
        rows.append(stat("Ack p50, no sweep", inter["baseline_p50_ms"], "ms"))
        rows.append(stat("Ack p99, no sweep", inter["baseline_p99_ms"], "ms"))
        deleted = inter["sweep_rows_deleted"]
        rows.append(
            stat(f"Ack p50, during a {deleted:,}-row sweep", inter["during_sweep_p50_ms"], "ms")
        )
        rows.append(
            stat(f"Ack p99, during a {deleted:,}-row sweep", inter["during_sweep_p99_ms"], "ms")
        )
        rows.append(one("  ack p99 during : without", inter["p99_ratio"], "x"))
        rows.append(stat("  longest sweep statement", inter["longest_statement_ms"], "ms"))
        small = inter["smaller_batches"]
        head = f"  with batch size {small['batch_size']:,} per arm"
        rows.append(stat(f"{head}: ack p99 during sweep", small["during_sweep_p99_ms"], "ms"))
        rows.append(one(f"{head}: ack p99 during : without", small["p99_ratio"], "x"))
        rows.append(stat(f"{head}: longest statement", small["longest_statement_ms"], "ms"))
    if "phantom_busy" in figures:
        phantom = figures["phantom_busy"]
        head = f"Phantom-busy ({phantom['workspaces']:,} ws, {phantom['activity_rows']:,} activity)"
        rows.append(stat(f"{head}: NOT EXISTS (ours)", phantom["ours_ms"], "ms"))
        rows.append(stat("  NOT IN (SELECT DISTINCT ...)", phantom["not_in_ms"], "ms"))
        rows.append(one("  time ours : NOT IN", phantom["time_ratio"], "x"))
        rows.append(
            one(
                "  rows reset (same by both)",
                f"{phantom['reset_rows']} ({phantom['same_rows_reset']})",
            )
        )
    return rows


def _sweep_rows(title: str, figure: dict[str, Any]) -> list[Row]:
    eligible = figure["eligible_acked"] + figure["eligible_expired"]
    head = f"{title} ({figure['rows']:,} rows, {eligible:,} eligible)"
    return [
        stat(f"{head}: ours", figure["ours"]["seconds"], "s"),
        stat(f"{head}: unbounded CTE", figure["unbounded"]["seconds"], "s"),
        stat("  ours throughput", figure["ours"]["rows_per_s"], "rows/s"),
        stat("  unbounded throughput", figure["unbounded"]["rows_per_s"], "rows/s"),
        one("  throughput ours : unbounded", figure["throughput_ratio"], "x"),
        stat("  longest statement, ours", figure["ours"]["longest_statement_ms"], "ms"),
        one("  batches, ours", figure["ours"]["batches"]),
    ]


def _batch_rows(points: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for point in points:
        head = f"  ours, batch size {point['batch_size']:,} per arm"
        rows.append(one(f"{head}: time", point["seconds"], "s"))
        rows.append(one(f"{head}: longest statement", point["longest_statement_ms"], "ms"))
    return rows
