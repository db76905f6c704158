"""The soak's output: a human report or one line of JSON."""

from __future__ import annotations

import json

from soak.checks import Report
from soak.config import CHECK_NAMES

# --- output -------------------------------------------------------------------------------


def print_report(report: Report) -> None:
    f = report.figures
    if "requests" in f:
        print(
            f"soak: {f['traffic_seconds']:.0f} s of traffic from {f['clients']} clients "
            f"({f['web_workers']} web workers); TTL {f['ttl_seconds']:g} s, retention "
            f"{f['ack_retention_seconds']:g} s, sweep every {f['sweep_interval_seconds']:g} s"
        )
        print(
            f"requests: {f['requests']} ({f['requests_per_second']}/s); uploads: "
            f"{f['uploads_created']} files ({f['uploads_per_second']}/s) in {f['workspaces']} "
            f"workspaces, {f['uploads_acked']} acked, {f['uploads_never_fetched']} never fetched"
        )
        for endpoint, figures in f["latency"].items():
            print(
                f"  {endpoint:<9} p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
                f"max {figures['max_ms']} ms"
            )
        if f.get("table_timeline"):
            points = ", ".join(
                f"{p['seconds']} s: {p['rows']} rows/{p['mib']} MiB" for p in f["table_timeline"]
            )
            print(f"table over time: {points}")
            print(
                f"autovacuum {'on' if f['autovacuum'] else 'OFF'}, ran {f['autovacuum_runs']} "
                f"times on pending_uploads; at most {f['table_max_dead_rows']} dead rows"
            )
        for example in f["examples"]:
            print(f"  e.g. {example}")
    for name in CHECK_NAMES:
        check = report.checks.get(name)
        if check is not None:
            print(f"{'PASS' if check.passed else 'FAIL'}  {name}: {check.detail}")
    for name, check in report.checks.items():
        if name not in CHECK_NAMES:
            print(f"{'PASS' if check.passed else 'FAIL'}  {name}: {check.detail}")
    print(f"verdict: {'PASS' if report.passed else 'FAIL'}")


def report_json(report: Report) -> str:
    return json.dumps(
        {
            "passed": report.passed,
            "checks": {
                name: {"passed": c.passed, "detail": c.detail} for name, c in report.checks.items()
            },
            "failures": [
                f"{name}: {c.detail}" for name, c in report.checks.items() if not c.passed
            ],
            "figures": report.figures,
        }
    )
