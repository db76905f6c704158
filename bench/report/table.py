"""The printed table of figures: each section's rows, in order."""

from __future__ import annotations

from typing import Any

from bench import slow_report
from bench.report.api import api_rows
from bench.report.bucket import bucket_rows
from bench.report.rows import Row, cell
from bench.report.sweeps import sweep_rows
from bench.report.throughput import cpu_rows, feed_rows, throughput_rows


def table_rows(figures: dict[str, Any]) -> list[Row]:
    rows = sweep_rows(figures) + api_rows(figures)
    if "slow_clients" in figures:
        rows += slow_report.slow_rows(figures["slow_clients"])
    if "feed" in figures:
        rows += feed_rows(figures["feed"])
    if "throughput" in figures:
        rows += throughput_rows(figures["throughput"])
    if "cpu" in figures:
        rows += cpu_rows(figures["cpu"])
    rows += bucket_rows(figures)
    return rows


def format_table(figures: dict[str, Any]) -> str:
    lines = [f"{'figure':<74} {'median':>12} {'min':>12} {'max':>12}  unit"]
    for label, median, low, high, unit in table_rows(figures):
        lines.append(f"{label:<74} {cell(median):>12} {cell(low):>12} {cell(high):>12}  {unit}")
    return "\n".join(lines)
