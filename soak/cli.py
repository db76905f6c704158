"""``python -m soak``: parse the options, run the soak, print the report, exit 0 or 1."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from soak.checks import Report
from soak.config import say
from soak.report import print_report, report_json
from soak.run import soak


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m soak",
        description="Soak the real service with upload traffic and check it stays healthy.",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="traffic duration (10)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (4)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--ttl", type=float, default=20.0, help="upload TTL in seconds (20)")
    parser.add_argument("--retention", type=float, default=5.0, help="ack retention, s (5)")
    parser.add_argument("--interval", type=float, default=5.0, help="sweep interval, s (5)")
    parser.add_argument(
        "--unfetched", type=float, default=0.1, help="fraction of uploads never fetched (0.1)"
    )
    parser.add_argument("--max-file-bytes", type=int, default=2048, help="largest file (2048)")
    parser.add_argument("--think-ms", type=float, default=5.0, help="mean pause per loop (5)")
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="sampling period (2)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-name", default="molecule_soak", help="database created on DATABASE_URL's server"
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the soak database")
    parser.add_argument("--log-dir", help="where the service logs go (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print one line of JSON")
    options = parser.parse_args(argv)
    if options.minutes <= 0 or options.clients < 1 or options.web_workers < 1:
        parser.error("--minutes, --clients and --web-workers must be positive")
    if min(options.ttl, options.retention, options.interval, options.sample_seconds) <= 0:
        parser.error("--ttl, --retention, --interval and --sample-seconds must be positive")
    if not 0 <= options.unfetched < 1 or options.max_file_bytes < 1:
        parser.error("--unfetched must be in [0, 1) and --max-file-bytes positive")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    report = Report()
    # Metrics files, and the service logs unless --log-dir: kept when the soak fails.
    scratch = Path(tempfile.mkdtemp(prefix="molecule-soak-"))
    try:
        soak(options, report, scratch)
    except Exception as exc:
        report.check("setup", False, f"{type(exc).__name__}: {str(exc).strip()[:2000]}")
    except KeyboardInterrupt:
        report.check("setup", False, "interrupted")
    if report.passed:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        say(f"service logs and metrics files kept in {options.log_dir or scratch}")
    if options.json:
        print(report_json(report), flush=True)
    else:
        print_report(report)
    return 0 if report.passed else 1
