"""The throughput section: every scenario against every side, and what one host carries."""

from __future__ import annotations

import os
from typing import Any

from bench.config import Scale
from bench.database import BenchDatabases
from bench.throughput.rates import WRK_CONNECTIONS, WRK_THREADS, measure_rates
from bench.throughput.scenarios import ack_calls, inbox_ack_calls, large_file, poll_scenarios
from bench.throughput.seed import ACKED_SQL, INBOX_MARKS_SQL, PAGE_ROWS, applied
from bench.throughput.servers import servers

# The runtime polls every POLL_INTERVAL_SECONDS: what one host carries follows from the rate.
POLL_INTERVAL_SECONDS = 5


def bench_throughput(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    load_start = os.getloadavg()
    with servers(db, scale) as ports:
        figure: dict[str, Any] = {}
        for name, poll in poll_scenarios(db, ports).items():
            calls = poll.pop("calls")
            figure[name] = {**measure_rates(ports, calls, scale), **poll}
        for name, (make, sql) in {
            "ack": (ack_calls, ACKED_SQL),
            "activity_ack": (inbox_ack_calls, INBOX_MARKS_SQL),
        }.items():
            calls, keys = make(db)
            figure[name] = measure_rates(ports, calls, scale)
            # Every row (every workspace's mark) the run cycled through was acked, on each side.
            figure[name]["applied"] = applied(db, sql, keys)
            figure[name]["expected"] = len(calls["service"])
        figure["large_file"] = large_file(db, ports, scale)
    head = figure["head_poll"]["service"]["rps"]["median"]
    figure["setup"] = {
        "servers": "gunicorn with gunicorn.conf.py: 2 workers x "
        f"{scale.throughput_threads} threads (gthread), each",
        "client": f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS}, {scale.throughput_seconds:g} s "
        f"per run, {scale.throughput_reps} runs per side, sides alternating",
        "page_rows": PAGE_ROWS,
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    # Every idle workspace polls once per interval: the head-poll rate carries this many, with
    # the host doing nothing else.
    figure["workspaces_per_host"] = round(head * POLL_INTERVAL_SECONDS) if head else None
    return {"throughput": figure}
