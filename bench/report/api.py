"""The API's rows against raw psycopg, and a worker's memory through an upload and fetch."""

from __future__ import annotations

from typing import Any

from bench.report.rows import Row, one, stat


def api_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "api" in figures:
        for name in ("upload_1k", "upload_1m", "fetch_1m", "ack"):
            endpoint = figures["api"][name]
            rows.append(stat(f"API {name}: requests/s", endpoint["api"]["rps"], "req/s"))
            rows.append(stat(f"  raw psycopg {name}: ops/s", endpoint["raw"]["rps"], "ops/s"))
            rows.append(stat("  API p99", endpoint["api"]["p99_ms"], "ms"))
            rows.append(stat("  raw p99", endpoint["raw"]["p99_ms"], "ms"))
            rows.append(one("  throughput API : raw", endpoint["ratio"], "x"))
        big = figures["api"].get("big_file")
        for operation in ("upload", "fetch") if big else ():
            head = f"API {big['file_mib']:g} MiB {operation}, one at a time"
            rows.append(stat(f"{head}: MiB/s", big[operation]["api_mib_s"], "MiB/s"))
            rows.append(
                stat(f"  raw psycopg {operation}: MiB/s", big[operation]["raw_mib_s"], "MiB/s")
            )
            rows.append(one("  throughput API : raw", big[operation]["ratio"], "x"))
    if "memory" in figures:
        for memory in figures["memory"]["curve"]:
            rows += memory_rows(f"Worker memory, {memory['file_mib']:g} MiB", memory)
    return rows


def memory_rows(title: str, memory: dict[str, Any]) -> list[Row]:
    """One size's point: a fresh worker's RSS, and its peak growth for an upload + fetch."""
    return [
        stat(f"{title} upload + fetch: RSS before", memory["rss_before_mib"], "MiB"),
        stat("  peak RSS growth, upload", memory["peak_upload_growth_mib"], "MiB"),
        stat("  peak RSS growth, fetch", memory["peak_fetch_growth_mib"], "MiB"),
        stat("  peak RSS growth, overall", memory["peak_growth_mib"], "MiB"),
        one("  growth : file size", memory["growth_ratio"], "x"),
    ]
