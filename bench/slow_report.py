"""The slow-clients rows of the printed table and their targets (figures of bench.slow_clients)."""

from __future__ import annotations

from typing import Any

WORST_POLL_GOAL_MS = 200.0


def slow_rows(figure: dict[str, Any]) -> list[tuple[str, Any, Any, Any, str]]:
    rows: list[tuple[str, Any, Any, Any, str]] = []
    for key, where in (
        ("gunicorn", "gunicorn alone"),
        ("nginx", "through nginx"),
        ("nginx_burst", "through nginx, all bodies complete at once"),
    ):
        run = figure.get(key, {})
        if "skipped" in run:
            rows.append((f"Slow clients, {where}: skipped", run["skipped"], None, None, ""))
            continue
        if not run:
            continue
        head = (
            f"Slow clients, {where}: {run['uploads']} uploads at {run['rate_kib_s']} KiB/s"
            f" + {run['dripping_headers']} dripping headers"
        )
        rows.append((f"{head}: worst poll", run["worst_poll_ms"], None, None, "ms"))
        rows.append(
            ("  worst poll while trickling", run["worst_poll_while_trickling_ms"], None, None, "ms")
        )
        rows.append(
            (
                "  worst poll while uploads complete",
                run["worst_poll_while_finishing_ms"],
                None,
                None,
                "ms",
            )
        )
        rows.append(("  poll p50", run["p50_poll_ms"], None, None, "ms"))
        rows.append(("  poll p99", run["p99_poll_ms"], None, None, "ms"))
        rows.append(("  polls", run["polls"], None, None, ""))
        rows.append(("  poll errors", run["poll_errors"], None, None, ""))
        rows.append(("  uploads answered 200", run["uploads_ok"], None, None, ""))
    return rows


def slow_targets(figure: dict[str, Any]) -> list[tuple[str, str, Any, str, float, dict]]:
    """(target, goal, value, compare, bound, required flags) for the two slow-client figures."""
    found = []
    for key, where in (("gunicorn", "gunicorn alone"), ("nginx", "through nginx")):
        run = figure.get(key, {})
        value = run.get("worst_poll_ms")
        name = (
            f"worst poll, {run.get('uploads', '?')} slow uploads + "
            f"{run.get('dripping_headers', '?')} dripping headers, {where}"
        )
        requires = {"no_poll_error": not run.get("poll_errors")}
        goal = f"<= {WORST_POLL_GOAL_MS:.0f} ms, no poll error"
        found.append((name, goal, value, "<=", WORST_POLL_GOAL_MS, requires))
    return found
