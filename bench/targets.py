"""The issues' targets, each with its goal and whether the figures meet it.

Every target carries its test in machine-readable form (``compare`` and ``bound``, and the
correctness flags it ``requires``), so ``met`` can be checked against ``value`` by anyone:
``met`` is true exactly when the value is present, ``value <compare> bound`` holds, and every
required flag is true (tests/bench checks that each result file says so).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bench import slow_report
from bench.report.rows import cell

COMPARE: dict[str, Callable[[Any, Any], bool]] = {"<=": operator.le, ">=": operator.ge}


def target_met(value: Any, compare: str, bound: float, requires: dict[str, bool]) -> bool:
    return value is not None and COMPARE[compare](value, bound) and all(requires.values())


def _goal(
    name: str,
    goal: str,
    value: Any,
    compare: str,
    bound: float,
    requires: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """A target whose figure may be missing (None): then it is not met."""
    requires = requires or {}
    return {
        "target": name,
        "goal": goal,
        "value": value,
        "compare": compare,
        "bound": bound,
        "requires": requires,
        "met": target_met(value, compare, bound, requires),
    }


def _sweep_targets(label: str, sweep: dict[str, Any]) -> list[dict[str, Any]]:
    longest = sweep["ours"]["longest_statement_ms"]["max"]
    same_rows = {
        # Both variants deleted the same rows, every repetition: else the ratio means nothing.
        "same_rows_deleted": sweep["ours"]["rows_deleted"] == sweep["unbounded"]["rows_deleted"]
        and sweep["ours"]["rows_deleted_consistent"]
        and sweep["unbounded"]["rows_deleted_consistent"],
    }
    return [
        _goal(
            f"sweep throughput, {label}",
            ">= 0.9x unbounded",
            sweep["throughput_ratio"],
            ">=",
            0.9,
            same_rows,
        ),
        _goal(f"longest sweep statement, {label}", "<= 250 ms", longest, "<=", 250),
    ]


def _memory_targets(memory: dict[str, Any]) -> list[dict[str, Any]]:
    worst = max(point["peak_growth_mib"]["median"] for point in memory["curve"])
    return [
        _goal(
            f"worker peak RSS growth, {memory['file_mib']:g} MiB",
            "<= 1x the file size",
            memory["growth_ratio"],
            "<=",
            1,
        ),
        _goal("worker peak RSS growth, every size", "<= 16 MiB", worst, "<=", 16),
    ]


def _api_targets(api: dict[str, Any]) -> list[dict[str, Any]]:
    found = [
        _goal(
            "fetch 1 MiB through the API",
            ">= 0.5x raw throughput",
            api["fetch_1m"]["ratio"],
            ">=",
            0.5,
            {"no_errors": not api["fetch_1m"]["api"]["errors"]},
        )
    ]
    big = api.get("big_file")
    for operation, floor in (("fetch", 0.9), ("upload", 0.8)) if big else ():
        found.append(
            _goal(
                f"{big['file_mib']:g} MiB {operation} through the API",
                f">= {floor}x raw (goal >= 1x)",
                big[operation]["ratio"],
                ">=",
                floor,
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
            "<=",
            100,
            {
                "no_row_missed": busy["rows_missed"] == 0,
                "no_row_twice": busy["rows_delivered_twice"] == 0,
            },
        )
    ]


def _throughput_targets(figure: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, label in (("head_poll", "head poll"), ("page_poll", "poll returning a page")):
        poll = figure[key]
        found.append(
            _goal(
                f"{label} through the service",
                ">= 0.4x the plain-WSGI floor (goal 1x)",
                poll["ratio"],
                ">=",
                0.4,
                {
                    "same_answer_as_floor": poll["same_answer"],
                    "no_errors": not poll["service"]["errors"] and not poll["floor"]["errors"],
                },
            )
        )
    large = figure["large_file"]
    for operation, bound in (("upload", 0.8), ("fetch", 0.9)):
        found.append(
            _goal(
                f"{large['file_mib']:g} MiB {operation} through the service",
                f">= {bound}x the plain-WSGI floor",
                large[operation]["ratio"],
                ">=",
                bound,
                {"bytes_intact": all(large["bytes_intact"].values())},
            )
        )
    return found


Requires = Callable[[dict[str, Any]], dict[str, bool]]

# One figure each: (figure, target, goal, where its value is, compare, bound, the flags it needs).
_FIGURE_TARGETS: tuple[tuple[str, str, str, tuple[str, ...], str, float, Requires], ...] = (
    (
        "empty_sweep",
        "empty sweep on the full table",
        "median <= 5 ms, index scans only",
        ("ours_ms", "median"),
        "<=",
        5,
        lambda figure: {"index_scans_only": bool(figure["index_scans_only"])},
    ),
    (
        "interference",
        "ack p99 during sweep",
        "<= 2x without",
        ("p99_ratio",),
        "<=",
        2,
        lambda figure: {"acks_applied": figure["acks_not_applied"] == 0},
    ),
    (
        "phantom_busy",
        "phantom-busy NOT EXISTS vs NOT IN",
        "no slower (ratio <= 1)",
        ("time_ratio",),
        "<=",
        1,
        lambda figure: {"same_rows_reset": bool(figure["same_rows_reset"])},
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
                ">=",
                1.0,
                {"no_object_left": sweep["drain"]["objects_left"] == 0},
            )
        )
    if "bucket_memory" in figures:
        memory = figures["bucket_memory"]
        found.append(
            _goal(
                f"worker peak RSS growth through the bucket, {memory['file_mib']:g} MiB",
                "<= 32 MiB",
                memory["peak_growth_mib"]["median"],
                "<=",
                32,
            )
        )
    return found


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, label in (("upload_sweep", "1 KiB rows"), ("toast_sweep", "TOAST rows")):
        if key in figures:
            found += _sweep_targets(label, figures[key])
    for key, name, goal, value_path, compare, bound, requires in _FIGURE_TARGETS:
        if key in figures:
            figure = figures[key]
            value = figure
            for step in value_path:
                value = value[step]
            found.append(_goal(name, goal, value, compare, bound, requires(figure)))
    if "memory" in figures:
        found += _memory_targets(figures["memory"])
    if "api" in figures:
        found += _api_targets(figures["api"])
    if "feed" in figures:
        found += _feed_targets(figures["feed"])
    if "throughput" in figures:
        found += _throughput_targets(figures["throughput"])
    if "slow_clients" in figures:
        found += [_goal(*item) for item in slow_report.slow_targets(figures["slow_clients"])]
    found += _bucket_targets(figures)
    return found


def format_targets(found: list[dict[str, Any]]) -> str:
    lines = ["", "Targets:"]
    for item in found:
        mark = "met" if item["met"] else "MISSED"
        unmet = [flag for flag, ok in item["requires"].items() if not ok]
        note = f"; failed: {', '.join(unmet)}" if unmet else ""
        lines.append(
            f"  [{mark:>6}] {item['target']}: {cell(item['value'])} (goal {item['goal']}{note})"
        )
    return "\n".join(lines)
