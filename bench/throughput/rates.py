"""Request rates: wrk against each side, the sides alternating, and the figure of the runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from typing import Any

from bench.config import Scale
from bench.stats import ratio, summary
from bench.throughput.servers import PROTOTYPE

logger = logging.getLogger("bench")

WRK = "wrk"  # on PATH: the bench refuses to start the section without it
WRK_THREADS = 2
WRK_CONNECTIONS = 16
# Long enough that a request slowed by a busy machine is measured rather than counted as an
# error (wrk's default is 2 s); the timeouts are reported apart from the errors.
WRK_TIMEOUT = "10s"

# wrk's script: cycle through (method, path, token, body) and print the summary as JSON.
WRK_SCRIPT = """
local calls = %(calls)s
local n = 0
request = function()
  n = n + 1
  local call = calls[(n %% #calls) + 1]
  local body = call[4]
  local headers = {["Authorization"] = "Bearer " .. call[3]}
  if body ~= nil then
    body = string.gsub(body, "@N", tostring(n))
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(call[1], call[2], headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "seconds": %%f, "status_errors": %%d, "socket_errors": %%d, ' ..
    '"timeouts": %%d, "p50_ms": %%f, "p99_ms": %%f}\\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""

Call = tuple[str, str, str, str | None]


def _lua(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, str):
        return json.dumps(value)
    return "{" + ", ".join(_lua(item) for item in value) + "}"


def wrk(port: int, calls: list[Call], seconds: float) -> dict[str, Any]:
    """One wrk run against 127.0.0.1:``port``; its summary (rate, errors, p50, p99)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"calls": _lua(calls)})
    try:
        done = subprocess.run(
            [
                WRK,
                f"-t{WRK_THREADS}",
                f"-c{WRK_CONNECTIONS}",
                f"-d{seconds:g}s",
                f"--timeout={WRK_TIMEOUT}",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        )
    finally:
        os.unlink(script.name)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["rps"] = result["requests"] / result["seconds"]
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def measure_rates(
    ports: dict[str, int], calls: dict[str, list[Call]], scale: Scale
) -> dict[str, Any]:
    """wrk on every side of ``calls``, the order rotating each repetition; the figure."""
    names = list(calls)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for rep in range(scale.throughput_reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            run = wrk(ports[name], calls[name], scale.throughput_seconds)
            runs[name].append(run)
            logger.info("throughput %s: %.0f req/s %s", name, run["rps"], json.dumps(run))
    figure: dict[str, Any] = {}
    for name, side_runs in runs.items():
        figure[name] = {
            "rps": summary([run["rps"] for run in side_runs], 1),
            "p50_ms": summary([run["p50_ms"] for run in side_runs], 2),
            "p99_ms": summary([run["p99_ms"] for run in side_runs], 2),
            "requests": sum(run["requests"] for run in side_runs),
            "errors": sum(run["status_errors"] + run["socket_errors"] for run in side_runs),
            "timeouts": sum(run["timeouts"] for run in side_runs),
            "load_average": [run["load_average"] for run in side_runs],
        }
    floor = figure["floor"]["rps"]["median"]
    figure["ratio"] = ratio(figure["service"]["rps"]["median"], floor)
    # Each repetition's own ratio (the two ran back to back): how much the noise moves it.
    figure["ratios"] = [
        ratio(s["rps"], f["rps"]) for s, f in zip(runs["service"], runs["floor"], strict=True)
    ]
    if PROTOTYPE in figure:
        figure["prototype_ratio"] = ratio(figure[PROTOTYPE]["rps"]["median"], floor)
    return figure
