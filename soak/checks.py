"""What the soak judges: the report's checks, from the table, the sweeps and the memory."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from soak.config import (
    BASELINE_BYTES,
    FINAL_SWEEP_TIMEOUT,
    MIB,
    ROW_OVERHEAD_BYTES,
    ROW_SLACK,
    RSS_FACTOR,
    RSS_SLACK_BYTES,
)
from soak.traffic import Ledger, Sample


@dataclass
class Check:
    passed: bool
    detail: str


@dataclass
class Report:
    checks: dict[str, Check] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, passed: bool, detail: str) -> None:
        self.checks[name] = Check(passed, detail)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks.values())


@dataclass(frozen=True)
class Vacuum:
    """How the server reclaims dead row versions, and how often it did on pending_uploads."""

    enabled: bool
    naptime_seconds: int
    autovacuum_runs: int


VACUUM_SQL = """
SELECT current_setting('autovacuum') = 'on',
       (SELECT setting::int FROM pg_settings WHERE name = 'autovacuum_naptime'),
       (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'pending_uploads')
"""


def check_table(
    report: Report,
    samples: list[Sample],
    ledger: Ledger,
    options: argparse.Namespace,
    vacuum: Vacuum,
) -> None:
    """Rows live at most TTL + retention + an interval (+1 for queue latency) after upload.

    Bytes: each upload leaves up to three row versions (insert, fetch stamp, ack), and their
    space is reused only after autovacuum, which wakes every naptime, has reclaimed it.
    """
    window = options.ttl + options.retention + 2 * options.interval
    dead_window = window + 3 * vacuum.naptime_seconds
    row_bytes = options.max_file_bytes + ROW_OVERHEAD_BYTES
    # The sample nearest to (or furthest over) its bound, as (value, bound).
    worst_rows: tuple[int, int] = (0, ROW_SLACK)
    worst_bytes: tuple[int, int] = (0, BASELINE_BYTES)
    peak_dead_window = 0
    rows_over = bytes_over = 0
    for sample in samples:
        row_bound = ledger.created_between(sample.at - window, sample.at) + ROW_SLACK
        # The relation's size is a high-water mark: hold it to the busiest window so far.
        peak_dead_window = max(
            peak_dead_window, ledger.created_between(sample.at - dead_window, sample.at)
        )
        byte_bound = BASELINE_BYTES + peak_dead_window * row_bytes
        if sample.rows / row_bound > worst_rows[0] / worst_rows[1]:
            worst_rows = (sample.rows, row_bound)
        if sample.total_bytes / byte_bound > worst_bytes[0] / worst_bytes[1]:
            worst_bytes = (sample.total_bytes, byte_bound)
        rows_over += sample.rows > row_bound
        bytes_over += sample.total_bytes > byte_bound
    max_rows = max((s.rows for s in samples), default=0)
    max_bytes = max((s.total_bytes for s in samples), default=0)
    # About ten points over the run, to show whether the size levels off.
    step = max(1, len(samples) // 10)
    origin = samples[0].at if samples else 0.0
    report.figures.update(
        {
            "samples": len(samples),
            "table_max_rows": max_rows,
            "table_max_bytes": max_bytes,
            "table_max_dead_rows": max((s.dead_rows for s in samples), default=0),
            "table_row_window_seconds": window,
            "table_timeline": [
                {
                    "seconds": round(s.at - origin),
                    "rows": s.rows,
                    "mib": round(s.total_bytes / MIB, 1),
                }
                for s in samples[::step]
            ],
            "autovacuum": vacuum.enabled,
            "autovacuum_runs": vacuum.autovacuum_runs,
        }
    )
    detail = (
        f"max {max_rows} rows and {max_bytes / MIB:.1f} MiB over {len(samples)} samples; "
        f"nearest their bounds: {worst_rows[0]} rows of {worst_rows[1]}, "
        f"{worst_bytes[0] / MIB:.1f} of {worst_bytes[1] / MIB:.1f} MiB"
    )
    if rows_over or bytes_over:
        detail = (
            f"{rows_over} samples over the row bound, {bytes_over} over the byte bound: {detail}"
        )
    if not vacuum.enabled:
        detail += "; autovacuum is off on this server, so dead row versions are never reclaimed"
    report.check("table_bounded", bool(samples) and not rows_over and not bytes_over, detail)


def check_sweeps(
    report: Report, Task: Any, sweep_ids: list[str], final_task: Any, counters: dict[str, float]
) -> None:
    tasks = {task.id: task for task in Task.objects.filter(id__in=sweep_ids)}
    failed = [t for t in tasks.values() if not t.success]
    # The sweep job never raises: a failed sweep is a result carrying "error".
    errored = [t for t in tasks.values() if t.success and "error" in (t.result or {})]
    problems = []
    if final_task is None:
        problems.append(f"the final sweep did not finish within {FINAL_SWEEP_TIMEOUT:.0f} s")
    elif not final_task.success or "error" in (final_task.result or {}):
        problems.append(f"the final sweep failed: {final_task.result}")
    if failed or errored:
        problems.append(f"{len(failed)} sweep tasks failed, {len(errored)} reported an error")
    if counters["error"]:
        problems.append(f"the sweep error counter rose by {counters['error']:.0f}")
    if not tasks:
        problems.append("no enqueued sweep ran")
    report.figures["sweeps_completed"] = len(tasks) + (final_task is not None)
    report.check(
        "sweeps",
        not problems,
        "; ".join(problems)
        or f"{len(tasks)} of {len(sweep_ids)} periodic sweeps and the final one ran and succeeded",
    )


def check_memory(
    report: Report,
    start: dict[int, tuple[str, int]],
    end: dict[int, tuple[str, int]],
    peak: dict[int, int],
) -> None:
    processes = []
    grew = []
    for pid, (role, rss_end) in sorted(end.items(), key=lambda item: (item[1][0], item[0])):
        if pid in start:
            rss_start = start[pid][1]
        else:
            # A process started during the run (a replaced worker) is held to its role's bound.
            rss_start = max((rss for r, rss in start.values() if r == role), default=rss_end)
        limit = RSS_FACTOR * rss_start + RSS_SLACK_BYTES
        processes.append(
            {
                "role": role,
                "pid": pid,
                "new": pid not in start,
                "start_mib": round(rss_start / MIB, 1),
                "end_mib": round(rss_end / MIB, 1),
                "peak_mib": round(max(peak.get(pid, 0), rss_end) / MIB, 1),
            }
        )
        if rss_end > limit:
            grew.append(f"{role} {pid} {rss_start / MIB:.0f} -> {rss_end / MIB:.0f} MiB")
    gone = sorted(set(start) - set(end))
    report.figures["processes"] = processes
    report.figures["processes_gone"] = gone
    summary = ", ".join(
        f"{p['role']} {p['pid']} {p['start_mib']:.0f}->{p['end_mib']:.0f} MiB" for p in processes
    )
    report.check(
        "memory",
        bool(end) and not grew,
        (f"grew beyond 2x + 50 MiB: {'; '.join(grew)}" if grew else f"RSS {summary}")
        + (f"; {len(gone)} processes were replaced" if gone else ""),
    )
