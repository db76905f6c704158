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
    readers = figure.get("nginx_readers", {})
    if readers and "skipped" not in readers:
        head = f"Slow readers through nginx: {readers['slow_readers']} at 512 B / 2 s"
        rows += [
            (f"{head}: worst poll", readers["worst_poll_ms"], None, None, "ms"),
            (
                "  worst poll while the answers spool into nginx",
                readers["worst_poll_while_spooling_ms"],
                None,
                None,
                "ms",
            ),
            (
                "  worst poll while only the readers are left",
                readers["worst_poll_while_reading_ms"],
                None,
                None,
                "ms",
            ),
            ("  poll p50", readers["p50_poll_ms"], None, None, "ms"),
            ("  poll p99", readers["p99_poll_ms"], None, None, "ms"),
            ("  polls", readers["polls"], None, None, ""),
            ("  poll errors", readers["poll_errors"], None, None, ""),
            ("  readers answered 200", readers["readers_ok"], None, None, ""),
            (
                "  nginx workers' peak RSS growth",
                readers["nginx_rss_growth_peak_mib"],
                None,
                None,
                "MiB",
            ),
            ("  nginx proxy temp files at peak", readers["proxy_temp_peak_mib"], None, None, "MiB"),
        ]
    return rows


def slow_targets(figure: dict[str, Any]) -> list[tuple[str, str, Any, str, float, dict]]:
    """(target, goal, value, compare, bound, required flags) for the three slow-client figures."""
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
    # The readers' figure: once gunicorn has handed their answers to nginx (it spools 64 files
    # at once first, work any 64 downloads cost), polls must not wait on them.
    readers = figure.get("nginx_readers", {})
    found.append(
        (
            f"worst poll, {readers.get('slow_readers', '?')} slow readers through nginx, once"
            " their answers are in nginx",
            f"<= {WORST_POLL_GOAL_MS:.0f} ms, no poll error, every reader served",
            readers.get("worst_poll_while_reading_ms"),
            "<=",
            WORST_POLL_GOAL_MS,
            {
                "no_poll_error": not readers.get("poll_errors"),
                "every_reader_served": readers.get("readers_ok") == readers.get("slow_readers"),
            },
        )
    )
    return found
