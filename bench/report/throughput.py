"""Service against its floor: throughput, CPU per request, and the feed's visibility waits."""

from __future__ import annotations

from typing import Any

from bench.report.rows import Row, one, stat

# What the throughput and cpu sections compare, in the order they are printed.
VARIANTS = {
    "service": "service",
    "whole_stack": "service, every request through the whole middleware stack",
    "prototype": "prototype: service + a cache that never misses",
    "floor": "plain-WSGI floor",
}


def cpu_rows(figure: dict[str, Any]) -> list[Row]:
    """CPU per poll: this process's, then its PostgreSQL backend's (median column only)."""
    rows: list[Row] = []
    for poll, label in (("head_poll", "head poll"), ("page_poll", "page poll")):
        for key, name in VARIANTS.items():
            found = figure[key].get(poll)
            if found is None:
                continue
            head = f"CPU per {label}, {name}: in process" if key == "service" else f"  {name}"
            rows.append(one(head, found["client_cpu_us"], "us"))
            rows.append(one("    in its PostgreSQL backend", found["backend_cpu_us"], "us"))
    large = figure["large_file"]
    for operation in ("upload", "fetch"):
        for key in ("service", "floor"):
            found = large[key][operation]
            name = VARIANTS[key]
            head = f"CPU per {large['file_mib']:g} MiB {operation}, {name}: in process"
            rows.append(
                one(head if key == "service" else f"  {name}", found["client_cpu_us"], "us")
            )
            rows.append(one("    in its PostgreSQL backend", found["backend_cpu_us"], "us"))
    return rows


THROUGHPUT_PATHS = (
    ("head_poll", "head poll (the runtime's idle poll, answer [])"),
    ("page_poll", "poll returning a page"),
    ("ack", "ack of a pending upload"),
    ("activity_ack", "activity ack"),
)


def throughput_rows(figure: dict[str, Any]) -> list[Row]:
    """Service against floor, per path: rates (median, min, max of the runs), then the ratio."""
    rows: list[Row] = []
    for key, label in THROUGHPUT_PATHS:
        path = figure[key]
        rows.append(stat(f"Throughput, {label}: service", path["service"]["rps"], "req/s"))
        rows.append(stat(f"  {VARIANTS['floor']}", path["floor"]["rps"], "req/s"))
        rows.append(one("  service : floor", path["ratio"], "x"))
        if "prototype" in path:
            rows.append(stat(f"  {VARIANTS['prototype']}", path["prototype"]["rps"], "req/s"))
            rows.append(one("  prototype : floor", path["prototype_ratio"], "x"))
    large = figure["large_file"]
    for operation in ("upload", "fetch"):
        head = f"Throughput, {large['file_mib']:g} MiB {operation}, one at a time: service"
        rows.append(stat(head, large[operation]["service_mib_s"], "MiB/s"))
        rows.append(stat(f"  {VARIANTS['floor']}", large[operation]["floor_mib_s"], "MiB/s"))
        rows.append(one("  service : floor", large[operation]["ratio"], "x"))
    rows.append(
        one("Workspaces polling every 5 s that one host carries", figure["workspaces_per_host"])
    )
    loads = figure["setup"]["load_average_at_start"], figure["setup"]["load_average_at_end"]
    rows.append(one("  load average (1, 5, 15 min) at start; at end", f"{loads[0]}; {loads[1]}"))
    return rows


def feed_rows(feed: dict[str, Any]) -> list[Row]:
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
        rows.append(one("  oldest open write transaction seen", oldest, "ms"))
        lost = f"{phase['rows_missed']} / {phase['rows_delivered_twice']}"
        rows.append(one("  rows missed / delivered twice", lost))
    return rows
