"""One soak run: the database, the service stack, the traffic, then the checks."""

from __future__ import annotations

import argparse
import atexit
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from bench.database import Server, manage
from bench.stats import percentile
from soak.background import (
    guarded_thread,
    rss_snapshot,
    sampler,
    sweep_enqueuer,
    swept_counters,
)
from soak.checks import VACUUM_SQL, Report, Vacuum, check_memory, check_sweeps, check_table
from soak.config import FINAL_SWEEP_TIMEOUT, PROGRESS_EVERY, REQUEST_TIMEOUT, SWEEP_TASK, say
from soak.database import database_drop, database_recreate, db_one
from soak.traffic import Api, Ledger, Sample, Stats, client_loop


def soak(options: argparse.Namespace, report: Report, scratch: Path) -> None:
    server = Server.start()
    # Stopped last (atexit runs in reverse): the embedded server goes after the drop.
    atexit.register(server.stop)
    say(f"creating database {options.database_name} on the {server.kind} server")
    database_url = database_recreate(server, options.database_name)
    if not options.keep_db and server.kind == "DATABASE_URL":
        atexit.register(database_drop, server, options.database_name)
    secret_key = secrets.token_urlsafe(50)
    metrics_token = secrets.token_urlsafe(32)
    # The driver is a Django process too: it enqueues sweeps (signed with the service's
    # SECRET_KEY) and samples the table. It must not write metrics of its own.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "molecule.settings",
            "DATABASE_URL": database_url,
            "SECRET_KEY": secret_key,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DEBUG": "0",
            # django-q2 logs every enqueue at INFO; the services log to their own files.
            "LOG_LEVEL": "WARNING",
        }
    )
    say("migrating")
    manage(dict(os.environ), "migrate", "--noinput")

    import django

    django.setup()
    from django.db import connection
    from django_q.models import Task
    from django_q.tasks import async_task, fetch

    from devtools.processes import ServiceStack

    ttl, retention, interval = options.ttl, options.retention, options.interval
    log_dir = Path(options.log_dir) if options.log_dir else scratch / "logs"
    stack = ServiceStack(
        database_url=database_url,
        metrics_dir=scratch / "prometheus",
        web_workers=options.web_workers,
        qclusters=1,
        extra_env={
            "SECRET_KEY": secret_key,
            "METRICS_TOKEN": metrics_token,
            "LOG_LEVEL": "INFO",
            "PENDING_UPLOADS_TTL": f"{ttl}s",
            "PENDING_UPLOADS_ACK_RETENTION": f"{retention}s",
            "PENDING_UPLOADS_SWEEP_INTERVAL": f"{interval}s",
        },
        log_dir=log_dir,
    )
    say(f"starting gunicorn ({options.web_workers} workers) and qcluster; logs in {log_dir}")
    stack.start(web=True, qcluster=True, timeout=60)
    try:
        run_traffic(options, report, stack, Task, async_task, fetch)
    finally:
        say("stopping the service")
        stack.stop()
        connection.close()


def run_traffic(
    options: argparse.Namespace, report: Report, stack: Any, Task: Any, async_task: Any, fetch: Any
) -> None:
    ttl, retention, interval = options.ttl, options.retention, options.interval
    stats, ledger = Stats(), Ledger()
    api = Api(stack.port, stats)
    counters_before = swept_counters(stack)
    rss_start = rss_snapshot(stack)
    rss_max: dict[int, int] = {pid: rss for pid, (_, rss) in rss_start.items()}
    samples: list[Sample] = []
    sweep_ids: list[str] = []
    stop_sampler, stop_sweeps = threading.Event(), threading.Event()
    duration = options.minutes * 60
    max_ticks = int(duration / min(interval, options.sample_seconds)) + 1000
    background = [
        guarded_thread(
            stats,
            "sampler",
            sampler,
            stop_sampler,
            options.sample_seconds,
            samples,
            stack,
            rss_max,
            max_ticks,
        ),
        guarded_thread(
            stats, "sweep enqueuer", sweep_enqueuer, stop_sweeps, interval, sweep_ids, max_ticks
        ),
    ]
    for thread in background:
        thread.start()
    started = time.monotonic()
    deadline = started + duration
    say(f"driving traffic from {options.clients} clients for {options.minutes:g} min")
    clients = [
        guarded_thread(stats, f"client {n}", client_loop, n, api, ledger, deadline, options)
        for n in range(options.clients)
    ]
    for thread in clients:
        thread.start()
    next_progress = started + PROGRESS_EVERY
    while any(t.is_alive() for t in clients):
        for thread in clients:
            thread.join(timeout=1.0)
        if time.monotonic() >= next_progress:
            next_progress += PROGRESS_EVERY
            last = samples[-1] if samples else None
            say(
                f"{(time.monotonic() - started) / 60:.1f} min: {stats.count()} requests, "
                f"{len(ledger.created)} uploads, table {last.rows if last else '?'} rows"
            )
        if time.monotonic() > deadline + 2 * REQUEST_TIMEOUT + 30:
            raise RuntimeError("client threads did not stop after the deadline")
    traffic_end = time.monotonic()
    traffic_seconds = traffic_end - started

    # Let the last acks age past the retention while the 5 s sweeps go on, then sweep once
    # more in the worker and wait for it: after it, no acked or expired row may be left.
    time.sleep(max(0.0, traffic_end + retention + 1 - time.monotonic()))
    stop_sweeps.set()
    background[1].join(timeout=30)
    (final_from,) = db_one("SELECT now()")
    final_id = async_task(SWEEP_TASK, task_name="soak-sweep-final")
    final_task = fetch(final_id, wait=int(FINAL_SWEEP_TIMEOUT * 1000))
    final_done = time.monotonic()
    stop_sampler.set()
    background[0].join(timeout=30)
    rss_end = rss_snapshot(stack)
    acked_left, expired_left = db_one(
        "SELECT count(*) FILTER (WHERE acked_at IS NOT NULL),"
        " count(*) FILTER (WHERE acked_at IS NULL AND expires_at <= %s) FROM pending_uploads",
        [final_from],
    )
    counters, remaining, deleted = metrics_against_database(stack, ledger, counters_before)
    (activity_uploads,) = db_one(
        "SELECT count(*) FROM activity_logs WHERE activity_type = 'a2a_receive'"
    )
    vacuum = Vacuum(*db_one(VACUUM_SQL))

    # --- checks ---
    fives = stats.count(status_from=500)
    transport = sum(stats.transport_errors.values())
    report.check(
        "no_5xx",
        fives == 0 and transport == 0,
        f"{fives} responses were 5xx, {transport} requests failed in transport",
    )
    wrong = {kind: n for kind, n in stats.problems.items() if kind != "5xx"}
    report.check(
        "responses",
        not wrong,
        "every answer was the expected one"
        if not wrong
        else ", ".join(f"{n} {kind}" for kind, n in sorted(wrong.items())),
    )
    check_table(report, samples, ledger, options, vacuum)
    check_sweeps(report, Task, sweep_ids, final_task, counters)
    report.check(
        "acked_gone",
        acked_left == 0 and expired_left == 0,
        f"{acked_left} acked and {expired_left} expired rows left "
        f"{final_done - traffic_end:.0f} s after the traffic stopped",
    )
    created = len(ledger.created)
    swept = counters["acked"] + counters["expired"]
    match_problems = []
    if swept != deleted:
        match_problems.append(f"/metrics swept {swept:.0f} but the database lost {deleted}")
    if activity_uploads != created:
        match_problems.append(
            f"the activity log has {activity_uploads} uploads, the clients saw {created}"
        )
    report.check(
        "metrics_match",
        not match_problems,
        "; ".join(match_problems)
        or f"/metrics swept {counters['acked']:.0f} acked + {counters['expired']:.0f} expired"
        f" = {deleted} rows deleted ({created} created, {remaining} left)",
    )
    report.check(
        "exercised",
        counters["acked"] > 0 and counters["expired"] > 0,
        f"swept {counters['acked']:.0f} acked and {counters['expired']:.0f} expired rows",
    )
    check_memory(report, rss_start, rss_end, rss_max)
    if stats.driver_errors:
        report.check("driver", False, "; ".join(stats.driver_errors[:5]))

    latency = {
        endpoint: {
            "p50_ms": round((percentile(values, 50) or 0) * 1000, 1),
            "p95_ms": round((percentile(values, 95) or 0) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1),
        }
        for endpoint, values in sorted(stats.latencies.items())
    }
    report.figures.update(
        {
            "minutes": options.minutes,
            "traffic_seconds": round(traffic_seconds, 1),
            "clients": options.clients,
            "web_workers": options.web_workers,
            "ttl_seconds": ttl,
            "ack_retention_seconds": retention,
            "sweep_interval_seconds": interval,
            "requests": stats.count(),
            "requests_per_second": round(stats.count() / traffic_seconds, 1),
            "responses": {
                f"{endpoint} {status}": n
                for (endpoint, status), n in sorted(stats.statuses.items())
            },
            "latency": latency,
            "workspaces": ledger.workspaces,
            "uploads_created": created,
            "uploads_per_second": round(created / traffic_seconds, 1),
            "uploads_acked": ledger.acked,
            "uploads_never_fetched": ledger.abandoned,
            "rows_left": remaining,
            "swept_acked": counters["acked"],
            "swept_expired": counters["expired"],
            "swept_errors": counters["error"],
            "sweeps_enqueued": len(sweep_ids) + 1,
            "examples": stats.examples,
        }
    )


def metrics_against_database(
    stack: Any, ledger: Ledger, before: dict[str, float]
) -> tuple[dict[str, float], int, int]:
    """Counter deltas, rows left and rows deleted, read with no sweep committing in between."""
    created = list(ledger.created)
    query = "SELECT count(*) FROM pending_uploads WHERE file_id = ANY(%s)"
    for _ in range(5):
        (left_before,) = db_one(query, [created])
        now = swept_counters(stack)
        (left_after,) = db_one(query, [created])
        counters = {outcome: now[outcome] - before[outcome] for outcome in now}
        deleted = len(created) - left_after
        if left_before == left_after and counters["acked"] + counters["expired"] == deleted:
            break
        # A sweep (the minute schedule) committed between the reads, or has committed and not
        # yet counted: read again rather than report a mismatch that is only a moment old.
        time.sleep(1.0)
    return counters, left_after, deleted
