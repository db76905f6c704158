"""The printed table of figures, and the chart (the targets are in bench/targets.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import slow_report

Row = tuple[str, Any, Any, Any, str]


def _stat(label: str, stat: dict[str, Any] | None, unit: str) -> Row:
    stat = stat or {}
    return (label, stat.get("median"), stat.get("min"), stat.get("max"), unit)


def _one(label: str, value: Any, unit: str = "") -> Row:
    return (label, value, None, None, unit)


def _sweep_rows(title: str, figure: dict[str, Any]) -> list[Row]:
    eligible = figure["eligible_acked"] + figure["eligible_expired"]
    head = f"{title} ({figure['rows']:,} rows, {eligible:,} eligible)"
    return [
        _stat(f"{head}: ours", figure["ours"]["seconds"], "s"),
        _stat(f"{head}: unbounded CTE", figure["unbounded"]["seconds"], "s"),
        _stat("  ours throughput", figure["ours"]["rows_per_s"], "rows/s"),
        _stat("  unbounded throughput", figure["unbounded"]["rows_per_s"], "rows/s"),
        _one("  throughput ours : unbounded", figure["throughput_ratio"], "x"),
        _stat("  longest statement, ours", figure["ours"]["longest_statement_ms"], "ms"),
        _one("  batches, ours", figure["ours"]["batches"]),
    ]


def _batch_rows(points: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for point in points:
        head = f"  ours, batch size {point['batch_size']:,} per arm"
        rows.append(_one(f"{head}: time", point["seconds"], "s"))
        rows.append(_one(f"{head}: longest statement", point["longest_statement_ms"], "ms"))
    return rows


def table_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "upload_sweep" in figures:
        rows += _sweep_rows("Upload sweep", figures["upload_sweep"])
        for point in figures["sweep_curve"][:-1]:
            head = f"  curve {point['rows']:,} rows"
            rows.append(_stat(f"{head}: ours", point["ours"]["seconds"], "s"))
            rows.append(_stat(f"{head}: unbounded", point["unbounded"]["seconds"], "s"))
    rows += _batch_rows(figures.get("sweep_batch_sizes", []))
    if "sweep_io" in figures:
        for name, counters in figures["sweep_io"].items():
            rows.append(
                _one(
                    f"  per row, {name.replace('_', ' ')}: shared blocks read",
                    counters["shared_read_blocks_per_row"],
                )
            )
            rows.append(_one("    shared blocks hit", counters["shared_hit_blocks_per_row"]))
            rows.append(_one("    WAL records", counters["wal_records_per_row"]))
            rows.append(_one("    WAL bytes", counters["wal_bytes_per_row"], "B"))
    if "toast_sweep" in figures:
        kib = figures["toast_sweep"]["row_bytes"] // 1024
        rows += _sweep_rows(f"TOAST sweep, {kib} KiB rows", figures["toast_sweep"])
        rows += _batch_rows(figures["toast_sweep"]["batch_sizes"])
    if "empty_sweep" in figures:
        empty = figures["empty_sweep"]
        head = f"Empty sweep ({empty['rows']:,} rows, {empty['runs']} runs)"
        rows.append(_stat(f"{head}: ours", empty["ours_ms"], "ms"))
        rows.append(_stat("  unbounded CTE", empty["unbounded_ms"], "ms"))
        rows.append(_one("  index scans only", empty["index_scans_only"]))
    if "interference" in figures:
        inter = figures["interference"]
        rows.append(_stat("Ack p50, no sweep", inter["baseline_p50_ms"], "ms"))
        rows.append(_stat("Ack p99, no sweep", inter["baseline_p99_ms"], "ms"))
        deleted = inter["sweep_rows_deleted"]
        rows.append(
            _stat(f"Ack p50, during a {deleted:,}-row sweep", inter["during_sweep_p50_ms"], "ms")
        )
        rows.append(
            _stat(f"Ack p99, during a {deleted:,}-row sweep", inter["during_sweep_p99_ms"], "ms")
        )
        rows.append(_one("  ack p99 during : without", inter["p99_ratio"], "x"))
        rows.append(_stat("  longest sweep statement", inter["longest_statement_ms"], "ms"))
        small = inter["smaller_batches"]
        head = f"  with batch size {small['batch_size']:,} per arm"
        rows.append(_stat(f"{head}: ack p99 during sweep", small["during_sweep_p99_ms"], "ms"))
        rows.append(_one(f"{head}: ack p99 during : without", small["p99_ratio"], "x"))
        rows.append(_stat(f"{head}: longest statement", small["longest_statement_ms"], "ms"))
    if "phantom_busy" in figures:
        phantom = figures["phantom_busy"]
        head = f"Phantom-busy ({phantom['workspaces']:,} ws, {phantom['activity_rows']:,} activity)"
        rows.append(_stat(f"{head}: NOT EXISTS (ours)", phantom["ours_ms"], "ms"))
        rows.append(_stat("  NOT IN (SELECT DISTINCT ...)", phantom["not_in_ms"], "ms"))
        rows.append(_one("  time ours : NOT IN", phantom["time_ratio"], "x"))
        rows.append(
            _one(
                "  rows reset (same by both)",
                f"{phantom['reset_rows']} ({phantom['same_rows_reset']})",
            )
        )
    if "api" in figures:
        for name in ("upload_1k", "upload_1m", "fetch_1m", "ack"):
            endpoint = figures["api"][name]
            rows.append(_stat(f"API {name}: requests/s", endpoint["api"]["rps"], "req/s"))
            rows.append(_stat(f"  raw psycopg {name}: ops/s", endpoint["raw"]["rps"], "ops/s"))
            rows.append(_stat("  API p99", endpoint["api"]["p99_ms"], "ms"))
            rows.append(_stat("  raw p99", endpoint["raw"]["p99_ms"], "ms"))
            rows.append(_one("  throughput API : raw", endpoint["ratio"], "x"))
        big = figures["api"].get("big_file")
        for operation in ("upload", "fetch") if big else ():
            head = f"API {big['file_mib']:g} MiB {operation}, one at a time"
            rows.append(_stat(f"{head}: MiB/s", big[operation]["api_mib_s"], "MiB/s"))
            rows.append(
                _stat(f"  raw psycopg {operation}: MiB/s", big[operation]["raw_mib_s"], "MiB/s")
            )
            rows.append(_one("  throughput API : raw", big[operation]["ratio"], "x"))
    if "memory" in figures:
        for memory in figures["memory"]["curve"]:
            rows += _memory_rows(f"Worker memory, {memory['file_mib']:g} MiB", memory)
    if "slow_clients" in figures:
        rows += slow_report.slow_rows(figures["slow_clients"])
    if "feed" in figures:
        rows += _feed_rows(figures["feed"])
    if "throughput" in figures:
        rows += _throughput_rows(figures["throughput"])
    if "cpu" in figures:
        rows += _cpu_rows(figures["cpu"])
    rows += _bucket_rows(figures)
    return rows


# What the throughput and cpu sections compare, in the order they are printed.
VARIANTS = {
    "service": "service",
    "whole_stack": "service, every request through the whole middleware stack",
    "prototype": "prototype: service + a cache that never misses",
    "floor": "plain-WSGI floor",
}


def _cpu_rows(figure: dict[str, Any]) -> list[Row]:
    """CPU per poll: this process's, then its PostgreSQL backend's (median column only)."""
    rows: list[Row] = []
    for poll, label in (("head_poll", "head poll"), ("page_poll", "page poll")):
        for key, name in VARIANTS.items():
            found = figure[key].get(poll)
            if found is None:
                continue
            head = f"CPU per {label}, {name}: in process" if key == "service" else f"  {name}"
            rows.append(_one(head, found["client_cpu_us"], "us"))
            rows.append(_one("    in its PostgreSQL backend", found["backend_cpu_us"], "us"))
    large = figure["large_file"]
    for operation in ("upload", "fetch"):
        for key in ("service", "floor"):
            found = large[key][operation]
            name = VARIANTS[key]
            head = f"CPU per {large['file_mib']:g} MiB {operation}, {name}: in process"
            rows.append(
                _one(head if key == "service" else f"  {name}", found["client_cpu_us"], "us")
            )
            rows.append(_one("    in its PostgreSQL backend", found["backend_cpu_us"], "us"))
    return rows


THROUGHPUT_PATHS = (
    ("head_poll", "head poll (the runtime's idle poll, answer [])"),
    ("page_poll", "poll returning a page"),
    ("ack", "ack of a pending upload"),
    ("activity_ack", "activity ack"),
)


def _throughput_rows(figure: dict[str, Any]) -> list[Row]:
    """Service against floor, per path: rates (median, min, max of the runs), then the ratio."""
    rows: list[Row] = []
    for key, label in THROUGHPUT_PATHS:
        path = figure[key]
        rows.append(_stat(f"Throughput, {label}: service", path["service"]["rps"], "req/s"))
        rows.append(_stat(f"  {VARIANTS['floor']}", path["floor"]["rps"], "req/s"))
        rows.append(_one("  service : floor", path["ratio"], "x"))
        if "prototype" in path:
            rows.append(_stat(f"  {VARIANTS['prototype']}", path["prototype"]["rps"], "req/s"))
            rows.append(_one("  prototype : floor", path["prototype_ratio"], "x"))
    large = figure["large_file"]
    for operation in ("upload", "fetch"):
        head = f"Throughput, {large['file_mib']:g} MiB {operation}, one at a time: service"
        rows.append(_stat(head, large[operation]["service_mib_s"], "MiB/s"))
        rows.append(_stat(f"  {VARIANTS['floor']}", large[operation]["floor_mib_s"], "MiB/s"))
        rows.append(_one("  service : floor", large[operation]["ratio"], "x"))
    rows.append(
        _one("Workspaces polling every 5 s that one host carries", figure["workspaces_per_host"])
    )
    loads = figure["setup"]["load_average_at_start"], figure["setup"]["load_average_at_end"]
    rows.append(_one("  load average (1, 5, 15 min) at start; at end", f"{loads[0]}; {loads[1]}"))
    return rows


def _feed_rows(feed: dict[str, Any]) -> list[Row]:
    """The visibility waits as p50 / p99 / max in the median / min / max columns."""
    mb = feed["setup"]["upload_bytes"] / 1e6
    rows: list[Row] = []
    for name, title in (("quiet", "no upload"), ("upload_in_flight", f"{mb:g} MB upload")):
        phase = feed[name]
        for key, label in (
            ("visible_after_commit", f"Feed, {title}: row visible after commit (p50, p99, max)"),
            ("write", "  activity insert + commit (p50, p99, max)"),
        ):
            wait = phase[key]
            rows.append((label, wait["p50_ms"], wait["p99_ms"], wait["max_ms"], "ms"))
        oldest = phase["oldest_write_transaction_ms"]
        rows.append(_one("  oldest open write transaction seen", oldest, "ms"))
        lost = f"{phase['rows_missed']} / {phase['rows_delivered_twice']}"
        rows.append(_one("  rows missed / delivered twice", lost))
    return rows


def _bucket_rows(figures: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "bucket_sweep" in figures:
        sweep = figures["bucket_sweep"]
        eligible = sweep["eligible_acked"] + sweep["eligible_expired"]
        head = f"Bucket sweep ({sweep['rows']:,} rows, {eligible:,} eligible)"
        rows.append(_stat(f"{head}: SQL batches", sweep["sql"]["seconds"], "s"))
        rows.append(_stat("  object deletes (outbox drain)", sweep["drain"]["seconds"], "s"))
        rows.append(_stat("  together", sweep["total"]["seconds"], "s"))
        rows.append(
            _stat("  unbounded CTE, bytes inline", sweep["unbounded_inline"]["seconds"], "s")
        )
        rows.append(_stat("  throughput, SQL batches", sweep["sql"]["rows_per_s"], "rows/s"))
        rows.append(_stat("  throughput, together", sweep["total"]["rows_per_s"], "rows/s"))
        rows.append(
            _stat(
                "  throughput, unbounded inline", sweep["unbounded_inline"]["rows_per_s"], "rows/s"
            )
        )
        rows.append(_one("  SQL batches : unbounded inline", sweep["sql_throughput_ratio"], "x"))
        rows.append(_one("  together : unbounded inline", sweep["throughput_ratio"], "x"))
        rows.append(_stat("  object deletes/s", sweep["drain"]["objects_per_s"], "objects/s"))
        rows.append(_stat("  longest SQL batch", sweep["sql"]["longest_statement_ms"], "ms"))
        rows.append(
            _stat(
                "  longest statement, unbounded inline",
                sweep["unbounded_inline"]["longest_statement_ms"],
                "ms",
            )
        )
        rows.append(
            _stat(
                "  WAL per deleted row, SQL batches (server)",
                sweep["wal_bytes_per_row"]["sql"],
                "B",
            )
        )
        rows.append(
            _stat(
                "  WAL per deleted row, unbounded inline (server)",
                sweep["wal_bytes_per_row"]["unbounded_inline"],
                "B",
            )
        )
        for name, counters in sweep["statement_io"].items():
            head = f"  per row, {name.replace('_', ' ')} (EXPLAIN)"
            rows.append(_one(f"{head}: WAL bytes", counters["wal_bytes_per_row"], "B"))
            rows.append(_one("    WAL full-page images", counters["wal_fpi_per_row"]))
        rows.append(_one("  objects left in the bucket", sweep["drain"]["objects_left"]))
    if "bucket_memory" in figures:
        memory = figures["bucket_memory"]
        rows += _memory_rows(
            f"Worker memory through the bucket, {memory['file_mib']:g} MiB", memory
        )
    return rows


def _memory_rows(title: str, memory: dict[str, Any]) -> list[Row]:
    """One size's point: a fresh worker's RSS, and its peak growth for an upload + fetch."""
    return [
        _stat(f"{title} upload + fetch: RSS before", memory["rss_before_mib"], "MiB"),
        _stat("  peak RSS growth, upload", memory["peak_upload_growth_mib"], "MiB"),
        _stat("  peak RSS growth, fetch", memory["peak_fetch_growth_mib"], "MiB"),
        _stat("  peak RSS growth, overall", memory["peak_growth_mib"], "MiB"),
        _one("  growth : file size", memory["growth_ratio"], "x"),
    ]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(figures: dict[str, Any]) -> str:
    lines = [f"{'figure':<74} {'median':>12} {'min':>12} {'max':>12}  unit"]
    for label, median, low, high, unit in table_rows(figures):
        lines.append(f"{label:<74} {cell(median):>12} {cell(low):>12} {cell(high):>12}  {unit}")
    return "\n".join(lines)


def draw_chart(figures: dict[str, Any], path: Path) -> str:
    """Sweep time against eligible rows, and ack latency with and without a sweep."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart drawn"
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    curve = figures.get("sweep_curve", [])
    if curve:
        eligible = [p["eligible_acked"] + p["eligible_expired"] for p in curve]
        for key, label, style in (
            ("ours", "ours (batched, committed)", "o-"),
            ("unbounded", "unbounded CTE", "s--"),
        ):
            med = [p[key]["seconds"]["median"] for p in curve]
            low = [m - p[key]["seconds"]["min"] for m, p in zip(med, curve, strict=True)]
            high = [p[key]["seconds"]["max"] - m for m, p in zip(med, curve, strict=True)]
            left.errorbar(eligible, med, yerr=[low, high], fmt=style, capsize=3, label=label)
        left.set_xlabel("eligible rows (10 % of the table)")
        left.set_ylabel("sweep time, s (median, min-max)")
        left.set_title("Upload sweep: time vs eligible rows")
        left.grid(alpha=0.3)
        left.legend()
    inter = figures.get("interference")
    if inter:
        labels = ["p50", "p90", "p99"]
        series = [("no sweep", inter["pooled"]["baseline"], inter["pooled"]["baseline_p90_ms"])]
        for run in (inter, inter.get("smaller_batches")):
            if run:
                series.append(
                    (
                        f"during the sweep, batch size {run['batch_size']:,} per arm",
                        run["pooled"]["during_sweep"],
                        run["pooled"]["during_sweep_p90_ms"],
                    )
                )
        width = 0.8 / len(series)
        for number, (label, pooled, p90) in enumerate(series):
            values = [pooled["p50_ms"] or 0, p90 or 0, pooled["p99_ms"] or 0]
            offset = (number - (len(series) - 1) / 2) * width
            right.bar([x + offset for x in range(len(labels))], values, width, label=label)
        right.set_xticks(list(range(len(labels))), labels)
        right.set_ylabel("ack latency, ms")
        right.set_title(f"Ack latency during a {inter['sweep_rows_deleted']:,}-row sweep (pooled)")
        right.grid(axis="y", alpha=0.3)
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"chart written to {path}"
