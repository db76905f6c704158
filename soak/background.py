"""Threads beside the traffic: the table sampler and the 5 s sweep enqueuer; process probes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from soak.config import SWEEP_TASK, SWEPT_METRIC
from soak.database import SAMPLE_SQL, db_one
from soak.traffic import Sample, Stats


def sampler(
    stop: threading.Event,
    every: float,
    samples: list[Sample],
    stack: Any,
    rss_max: dict[int, int],
    max_samples: int,
) -> None:
    from django.db import connection

    try:
        for _ in range(max_samples):
            samples.append(Sample(time.monotonic(), *db_one(SAMPLE_SQL)))
            for pid, rss in rss_snapshot(stack).items():
                rss_max[pid] = max(rss_max.get(pid, 0), rss[1])
            if stop.wait(every):
                break
    finally:
        connection.close()


def sweep_enqueuer(
    stop: threading.Event, every: float, task_ids: list[str], max_sweeps: int
) -> None:
    from django.db import connection
    from django_q.tasks import async_task

    try:
        for number in range(max_sweeps):
            task_ids.append(async_task(SWEEP_TASK, task_name=f"soak-sweep-{number}"))
            if stop.wait(every):
                break
    finally:
        connection.close()


def rss_snapshot(stack: Any) -> dict[int, tuple[str, int]]:
    """{pid: (role, RSS bytes)} of every live service process."""
    from devtools.processes import process_rss_bytes

    found = {}
    for role, pids in stack.pids().items():
        for pid in pids:
            rss = process_rss_bytes(pid)
            if rss is not None:
                found[pid] = (role, rss)
    return found


def swept_counters(stack: Any) -> dict[str, float]:
    from devtools.processes import metric_value

    text = stack.metrics_text()
    return {
        outcome: metric_value(text, SWEPT_METRIC, outcome=outcome) or 0.0
        for outcome in ("acked", "expired", "error")
    }


def guarded_thread(
    stats: Stats, name: str, target: Callable[..., None], *args: Any
) -> threading.Thread:
    """A daemon thread whose crash is recorded as a driver error instead of going unnoticed."""

    def body() -> None:
        try:
            target(*args)
        except Exception as exc:
            with stats.lock:
                stats.driver_errors.append(f"{name}: {type(exc).__name__}: {exc}")

    return threading.Thread(target=body, name=name, daemon=True)


# --- the run ------------------------------------------------------------------------------
