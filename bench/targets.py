"""The issues' targets, each with its goal and whether the figures meet it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench import slow_report
from bench.report import cell


def _target(name: str, goal: str, value: Any, met: bool | None) -> dict[str, Any]:
    return {"target": name, "goal": goal, "value": value, "met": met}


def _goal(
    name: str, goal: str, value: Any, holds: Callable[[Any], bool], *, also: bool = True
) -> dict[str, Any]:
    """A target whose figure may be missing (None): then it is not met."""
    return _target(name, goal, value, value is not None and holds(value) and also)


def _sweep_targets(label: str, sweep: dict[str, Any]) -> list[dict[str, Any]]:
    longest = sweep["ours"]["longest_statement_ms"]["max"]
    return [
        _goal(
            f"sweep throughput, {label}",
            ">= 0.9x unbounded",
            sweep["throughput_ratio"],
            lambda ratio: ratio >= 0.9,
        ),
        _goal(f"longest sweep statement, {label}", "<= 250 ms", longest, lambda ms: ms <= 250),
    ]


def _memory_targets(memory: dict[str, Any]) -> list[dict[str, Any]]:
    worst = max(point["peak_growth_mib"]["median"] for point in memory["curve"])
    return [
        _goal(
            f"worker peak RSS growth, {memory['file_mib']:g} MiB",
            "<= 1x the file size",
            memory["growth_ratio"],
            lambda ratio: ratio <= 1,
        ),
        _goal("worker peak RSS growth, every size", "<= 16 MiB", worst, lambda mib: mib <= 16),
    ]


def _api_targets(api: dict[str, Any]) -> list[dict[str, Any]]:
    found = [
        _goal(
            "fetch 1 MiB through the API",
            ">= 0.5x raw throughput",
            api["fetch_1m"]["ratio"],
            lambda ratio: ratio >= 0.5,
        )
    ]
    big = api.get("big_file")
    for operation, floor in (("fetch", 0.9), ("upload", 0.8)) if big else ():
        found.append(
            _goal(
                f"{big['file_mib']:g} MiB {operation} through the API",
                f">= {floor}x raw (goal >= 1x)",
                big[operation]["ratio"],
                lambda ratio, floor=floor: ratio >= floor,
            )
        )
    return found


def _feed_targets(feed: dict[str, Any]) -> list[dict[str, Any]]:
    busy = feed["upload_in_flight"]
    mb = feed["setup"]["upload_bytes"] / 1e6
    return [
        _goal(
            f"feed: row visible after commit, {mb:g} MB upload in flight (p99)",
            "<= 100 ms, every row exactly once",
            busy["visible_after_commit"]["p99_ms"],
            lambda ms: ms <= 100,
            also=busy["rows_missed"] == 0 and busy["rows_delivered_twice"] == 0,
        )
    ]


# One figure each: (figure, target, goal, where its value is, the test, a flag it also needs).
_FIGURE_TARGETS: tuple[tuple[str, str, str, tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (
        "empty_sweep",
        "empty sweep on the full table",
        "median <= 5 ms, index scans only",
        ("ours_ms", "median"),
        lambda ms: ms <= 5,
        "index_scans_only",
    ),
    ("interference", "ack p99 during sweep", "<= 2x without", ("p99_ratio",), lambda r: r <= 2, ""),
    (
        "phantom_busy",
        "phantom-busy NOT EXISTS vs NOT IN",
        "no slower (ratio <= 1)",
        ("time_ratio",),
        lambda ratio: ratio <= 1,
        "same_rows_reset",
    ),
)


def _bucket_targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    if "bucket_sweep" in figures:
        sweep = figures["bucket_sweep"]
        # The SQL part is ours; the object deletes after it go at the object store's pace
        # (their figures are reported beside it).
        found.append(
            _goal(
                "bucket sweep throughput, SQL batches (objects deleted after)",
                ">= 1.0x unbounded CTE, bytes inline",
                sweep["sql_throughput_ratio"],
                lambda ratio: ratio >= 1.0,
                also=sweep["drain"]["objects_left"] == 0,
            )
        )
    if "bucket_memory" in figures:
        memory = figures["bucket_memory"]
        found.append(
            _goal(
                f"worker peak RSS growth through the bucket, {memory['file_mib']:g} MiB",
                "<= 32 MiB",
                memory["peak_growth_mib"]["median"],
                lambda mib: mib <= 32,
            )
        )
    return found


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, label in (("upload_sweep", "1 KiB rows"), ("toast_sweep", "TOAST rows")):
        if key in figures:
            found += _sweep_targets(label, figures[key])
    for key, name, goal, value_path, holds, also_key in _FIGURE_TARGETS:
        if key in figures:
            figure = figures[key]
            value = figure
            for step in value_path:
                value = value[step]
            also = figure[also_key] if also_key else True
            found.append(_goal(name, goal, value, holds, also=also))
    if "memory" in figures:
        found += _memory_targets(figures["memory"])
    if "api" in figures:
        found += _api_targets(figures["api"])
    if "feed" in figures:
        found += _feed_targets(figures["feed"])
    if "slow_clients" in figures:
        found += [_target(*item) for item in slow_report.slow_targets(figures["slow_clients"])]
    found += _bucket_targets(figures)
    return found


def format_targets(found: list[dict[str, Any]]) -> str:
    lines = ["", "Targets:"]
    for item in found:
        mark = "met" if item["met"] else "MISSED"
        lines.append(f"  [{mark:>6}] {item['target']}: {cell(item['value'])} (goal {item['goal']})")
    return "\n".join(lines)
