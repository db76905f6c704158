"""Run the benchmarks: build the data, measure every section, print and save the results."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import targets
from bench.config import (
    ACK_RETENTION,
    FULL,
    MEDIUM,
    PHANTOM_STALE_AFTER,
    QUICK,
    SECTIONS,
    SWEEP_BATCH_SIZE,
    Scale,
)
from bench.database import BenchDatabases, Server, close_django_connections, django_setup
from bench.memory import draw_memory_chart
from bench.report.chart import draw_chart
from bench.report.table import format_table

RESULTS_DIR = Path(__file__).resolve().parent / "results"
logger = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the sweeps and the API against their alternatives.",
    )
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_true", help="tiny scale, for a smoke run")
    scale.add_argument(
        "--medium", action="store_true", help="300k rows and one run of each memory size"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="NAME",
        help=f"run only these sections: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--db-name",
        default="molecule_bench",
        help="working database name; <name>_schema and <name>_tpl_* are also used",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="JSON path (default bench/results/latest.json, quick.json with --quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    return parser.parse_args(argv)


def machine_info(db: BenchDatabases) -> dict[str, Any]:
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_mib = None
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        memory_mib = int(first.split()[1]) // 1024
    except (OSError, IndexError, ValueError):
        pass
    import django
    import gunicorn
    import psycopg

    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_mib": memory_mib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "gunicorn": gunicorn.__version__,
        "postgresql": db.server_info(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def runners() -> dict[str, Callable[[BenchDatabases, Scale], dict[str, Any]]]:
    from bench.api import bench_api
    from bench.bucket import bench_bucket_memory, bench_bucket_sweep
    from bench.cpu import bench_cpu
    from bench.empty import bench_empty
    from bench.feed import bench_feed
    from bench.interference import bench_interference
    from bench.memory import bench_memory
    from bench.phantom import bench_phantom
    from bench.slow_clients.run import bench_slow_clients
    from bench.sweeps import bench_sweep, bench_toast
    from bench.throughput.run import bench_throughput

    return {
        "sweep": bench_sweep,
        "toast": bench_toast,
        "empty": bench_empty,
        "interference": bench_interference,
        "phantom": bench_phantom,
        "api": bench_api,
        "memory": bench_memory,
        "slow": bench_slow_clients,
        "feed": bench_feed,
        "bucket_sweep": bench_bucket_sweep,
        "bucket_memory": bench_bucket_memory,
        "throughput": bench_throughput,
        "cpu": bench_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[bench] %(message)s")
    scale = QUICK if args.quick else MEDIUM if args.medium else FULL
    output = args.output or RESULTS_DIR / f"{'latest' if scale is FULL else scale.name}.json"
    sections = [name for name in SECTIONS if not args.only or name in args.only]
    if "throughput" in sections and not shutil.which("wrk"):
        print("bench: the throughput section needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    server = Server.start()
    db = BenchDatabases(server, args.db_name)
    figures: dict[str, Any] = {}
    timings: dict[str, float] = {}
    try:
        db.setup()
        db.fresh()
        django_setup(db.url)
        machine = machine_info(db)
        logger.info(
            "%s scale on %s (%s cores), PostgreSQL %s",
            scale.name,
            machine["cpu_model"],
            machine["cores"],
            machine["postgresql"]["server_version"],
        )
        available = runners()
        for name in sections:
            logger.info("=== %s ===", name)
            section_started = time.perf_counter()
            figures.update(available[name](db, scale))
            timings[name] = round(time.perf_counter() - section_started, 1)
    finally:
        close_django_connections()
        if not args.keep:
            db.drop_all()
        server.stop()
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    found = targets.targets(figures)
    results = {
        "schema_version": 1,
        "command": "python -m bench"
        + (" --quick" if args.quick else " --medium" if args.medium else ""),
        "taken_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - started, 1),
        "section_seconds": timings,
        "machine": machine,
        "scale": dataclasses.asdict(scale),
        "settings": {
            "ack_retention_seconds": ACK_RETENTION.total_seconds(),
            "sweep_batch_size": SWEEP_BATCH_SIZE,
            "phantom_stale_after_seconds": PHANTOM_STALE_AFTER.total_seconds(),
        },
        "figures": figures,
        "targets": found,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(format_table(figures))
    print(targets.format_targets(found))
    print(f"\nresults written to {output}")
    print(draw_chart(figures, output.with_suffix(".png")))
    print(draw_memory_chart(figures, output.with_name(f"{output.stem}-memory.png")))
    return 0
