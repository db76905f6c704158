#!/usr/bin/env python
"""Soak the real service (gunicorn + qcluster on PostgreSQL) with upload traffic, then judge it.

Usage: .venv/bin/python scripts/soak.py [--minutes 10] [--clients 4] [--json] [--keep-db]

Database: with DATABASE_URL set, the script creates its own database (``--database-name``,
default ``molecule_soak``) on that server, dropping it first if it exists and again at the end
unless ``--keep-db``; the database named in the URL is never touched. Without DATABASE_URL it
starts a throwaway embedded PostgreSQL (pgserver) in a temporary directory.

The service runs with a 20 s upload TTL, a 5 s ack retention and a sweep every 5 s. django-q2's
scheduler only ticks about every 30 s and its schedules have minute resolution, so a 5 s sweep
cannot come from the schedule table. Instead this driver enqueues
``pending_uploads.tasks.sweep_pending_uploads`` every 5 s with ``django_q.tasks.async_task``
(ORM broker). The real qcluster worker executes each sweep, exactly as it executes scheduled
ones, so its counts reach the web ``/metrics`` through the database (metric_totals).
The minute schedule keeps running too; it only adds sweeps.

Several client threads then drive loopback traffic for N minutes: register poll workspaces,
upload 1-3 small files, list them, fetch them (checking the bytes) and ack them, with about
10 % of uploads never fetched so that they expire. A sampler records the table's row count and
pg_total_relation_size, and the RSS of every service process. When the traffic stops, the script
waits out the retention, runs a final sweep in the worker and checks:

- no_5xx:         no response was 5xx and no request failed at the transport level;
- responses:      every other answer was the expected 200, with the uploaded bytes intact;
- table_bounded:  at every sample, the row count stayed below the uploads of the preceding
                  TTL + retention + 2 x interval (+50); and pg_total_relation_size stayed
                  below 2 MiB + (max file + 1 KiB) x the uploads of the busiest window of that
                  length plus 3 autovacuum naptimes, since each upload leaves up to three row
                  versions whose space is reused only once autovacuum has reclaimed it (with
                  autovacuum off, the size grows with the traffic and this check fails);
- sweeps:         every enqueued sweep succeeded and the error counter stayed at 0;
- acked_gone:     after the final sweep no acked row and no expired row is left;
- metrics_match:  /metrics' swept acked + expired equals the uploads created minus those left,
                  and the database's activity log saw exactly the uploads the clients saw;
- exercised:      both outcomes, acked and expired, were swept at least once;
- memory:         no service process ended above 2 x its starting RSS + 50 MiB.

Prints a report (or one line of JSON with --json) and exits 0 when every check passed, 1 if not.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import math
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

SWEEP_TASK = "pending_uploads.tasks.sweep_pending_uploads"
SWEPT_METRIC = "molecule_pending_uploads_swept_total"
REQUEST_TIMEOUT = 30.0
# Loops are bounded by count as well as by time, so a stuck clock cannot spin forever.
MAX_CLIENT_ITERATIONS = 1_000_000
MAX_WORKSPACES_PER_CLIENT = 20
NEW_WORKSPACE_EVERY = 50
HEARTBEAT_EVERY = 10
PROGRESS_EVERY = 30.0
FINAL_SWEEP_TIMEOUT = 60.0
# Slack in the row bound: uploads in flight when a sample is taken are in the table but
# not yet in the driver's ledger.
ROW_SLACK = 50
# An empty pending_uploads with its TOAST table and four indexes, and then some.
BASELINE_BYTES = 2 * 1024 * 1024
# Per row beyond the file itself: tuple header, TOAST pointer, four index entries, page slack.
ROW_OVERHEAD_BYTES = 1024
RSS_FACTOR = 2.0
RSS_SLACK_BYTES = 50 * 1024 * 1024
MIB = 1024 * 1024
CHECK_NAMES = (
    "no_5xx",
    "responses",
    "table_bounded",
    "sweeps",
    "acked_gone",
    "metrics_match",
    "exercised",
    "memory",
)
FILENAMES = ("notes.txt", "photo 1.png", "résumé.pdf", "../etc/passwd", "data.csv", "a")
MIMETYPES = ("text/plain", "image/png", "application/pdf", "application/octet-stream")


def say(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


# --- the database -------------------------------------------------------------------------


def url_with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def admin_url(server_url: str, name: str) -> str:
    """A database on the same server other than ``name``: one cannot drop the one in use."""
    current = urlsplit(server_url).path.lstrip("/")
    return server_url if current and current != name else url_with_database(server_url, "postgres")


def database_recreate(server_url: str, name: str) -> str:
    """Drop and create ``name`` on the server of ``server_url``; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url(server_url, name), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url_with_database(server_url, name)


def database_drop(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url(server_url, name), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def embedded_server_url() -> str:
    from molecule.embedded_pg import embedded_database_url

    scratch = Path(tempfile.mkdtemp(prefix="molecule-soak-pg-"))
    # The server may run as another user (pgserver's, when root), who must reach the directory.
    scratch.chmod(0o755)
    # Registered before pgserver registers its own stop, so it runs after the server stopped.
    atexit.register(shutil.rmtree, scratch, True)
    return embedded_database_url(scratch / "data")


def manage(env: dict[str, str], *args: str) -> None:
    from molecule.processes import manage_command

    completed = subprocess.run(
        manage_command(*args),
        env=env,
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed: {completed.stderr.strip()[-2000:]}")


# --- bookkeeping shared by the threads ----------------------------------------------------


@dataclass
class Stats:
    """Every answer the clients got, and everything that was not what it should have been."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    transport_errors: Counter = field(default_factory=Counter)
    problems: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    # Crashes of the driver's own threads: a soak that lost a client proves less.
    driver_errors: list[str] = field(default_factory=list)

    def answer(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[endpoint, status] += 1
            self.latencies.setdefault(endpoint, []).append(seconds)

    def transport_error(self, endpoint: str, exc: BaseException) -> None:
        with self.lock:
            self.transport_errors[endpoint] += 1
            self._example(f"{endpoint}: {type(exc).__name__}: {exc}")

    def problem(self, kind: str, detail: str) -> None:
        with self.lock:
            self.problems[kind] += 1
            self._example(f"{kind}: {detail}")

    def _example(self, text: str) -> None:
        if len(self.examples) < 10:
            self.examples.append(text)

    def count(self, *, status_from: int = 0, status_to: int = 1000) -> int:
        with self.lock:
            return sum(n for (_, s), n in self.statuses.items() if status_from <= s < status_to)


@dataclass
class Ledger:
    """The uploads the clients created, when, and what became of them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    created: set[uuid.UUID] = field(default_factory=set)
    created_at: list[float] = field(default_factory=list)
    acked: int = 0
    abandoned: int = 0
    workspaces: int = 0

    def add(self, file_ids: list[uuid.UUID]) -> None:
        now = time.monotonic()
        with self.lock:
            self.created.update(file_ids)
            self.created_at.extend([now] * len(file_ids))

    def created_between(self, start: float, end: float) -> int:
        with self.lock:
            times = sorted(self.created_at)
        return bisect_right(times, end) - bisect_left(times, start)


@dataclass(frozen=True)
class Sample:
    at: float
    rows: int
    acked_rows: int
    expired_rows: int
    total_bytes: int
    # The statistics collector's estimate of dead row versions awaiting vacuum.
    dead_rows: int


# --- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A tiny loopback HTTP client that records every answer in Stats."""

    def __init__(self, port: int, stats: Stats) -> None:
        self.port = port
        self.stats = stats

    def call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer | None:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.stats.transport_error(endpoint, exc)
            return None
        finally:
            conn.close()
        self.stats.answer(endpoint, response.status, time.monotonic() - started)
        if response.status >= 500:
            self.stats.problem("5xx", f"{method} {path} -> {response.status} {data[:200]!r}")
        return Answer(response.status, data)

    def expect(self, endpoint: str, method: str, path: str, **kwargs: Any) -> Answer | None:
        """Call and return the answer when it is 200; record anything else as a problem."""
        answer = self.call(endpoint, method, path, **kwargs)
        if answer is None:
            return None
        if answer.status != 200:
            if answer.status < 500:
                self.stats.problem(
                    "unexpected status", f"{method} {path} -> {answer.status} {answer.body[:200]!r}"
                )
            return None
        return answer


def multipart(files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, mimetype, data in files:
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: {mimetype}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass(frozen=True)
class ClientWorkspace:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def workspace_register(api: Api, label: str) -> ClientWorkspace | None:
    workspace_id = str(uuid.uuid4())
    body = {"id": workspace_id, "delivery_mode": "poll", "agent_card": {"name": label}}
    answer = api.expect(
        "register",
        "POST",
        "/registry/register",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    if answer is None:
        return None
    return ClientWorkspace(workspace_id, answer.json()["auth_token"])


def client_loop(
    number: int,
    api: Api,
    ledger: Ledger,
    deadline: float,
    options: argparse.Namespace,
) -> None:
    """One client: register poll workspaces, then upload, list, fetch and ack until the deadline."""
    # Reproducible traffic, not secrets.
    rng = random.Random(options.seed * 1000 + number)  # noqa: S311
    workspaces: list[ClientWorkspace] = []
    for iteration in range(MAX_CLIENT_ITERATIONS):
        if time.monotonic() >= deadline:
            break
        if not workspaces or (
            iteration % NEW_WORKSPACE_EVERY == 0 and len(workspaces) < MAX_WORKSPACES_PER_CLIENT
        ):
            ws = workspace_register(api, f"soak-{number}-{len(workspaces)}")
            if ws is not None:
                workspaces.append(ws)
                with ledger.lock:
                    ledger.workspaces += 1
            if not workspaces:
                time.sleep(0.5)
            continue
        ws = rng.choice(workspaces)
        files = [
            (
                rng.choice(FILENAMES),
                rng.choice(MIMETYPES),
                rng.randbytes(rng.randint(1, options.max_file_bytes)),
            )
            for _ in range(rng.randint(1, 3))
        ]
        body, content_type = multipart(files)
        answer = api.expect(
            "upload",
            "POST",
            f"/workspaces/{ws.id}/chat/uploads",
            body=body,
            headers={**ws.auth, "Content-Type": content_type},
        )
        if answer is not None:
            uploaded = [uuid.UUID(f["uri"].rsplit("/", 1)[1]) for f in answer.json()["files"]]
            ledger.add(uploaded)
            upload_handle(api, ws, ledger, rng, options, uploaded, [data for _, _, data in files])
        if iteration % HEARTBEAT_EVERY == 0:
            heartbeat = {
                "workspace_id": ws.id,
                "active_tasks": rng.randint(0, 3),
                "current_task": "soak",
            }
            api.expect(
                "heartbeat",
                "POST",
                "/registry/heartbeat",
                body=json.dumps(heartbeat).encode(),
                headers={**ws.auth, "Content-Type": "application/json"},
            )
        if options.think_ms:
            time.sleep(rng.uniform(0, 2 * options.think_ms) / 1000)


def upload_handle(
    api: Api,
    ws: ClientWorkspace,
    ledger: Ledger,
    rng: random.Random,
    options: argparse.Namespace,
    uploaded: list[uuid.UUID],
    contents: list[bytes],
) -> None:
    """List the new files, then fetch and ack all but the ones left never fetched."""
    listing = api.expect("list", "GET", f"/workspaces/{ws.id}/pending-uploads", headers=ws.auth)
    if listing is not None:
        listed = {uuid.UUID(row["file_id"]) for row in listing.json()}
        for file_id in set(uploaded) - listed:
            api.stats.problem("missing from list", f"{file_id} of workspace {ws.id}")
    for file_id, data in zip(uploaded, contents, strict=True):
        if rng.random() < options.unfetched:
            with ledger.lock:
                ledger.abandoned += 1
            continue
        base = f"/workspaces/{ws.id}/pending-uploads/{file_id}"
        fetched = api.expect("fetch", "GET", f"{base}/content", headers=ws.auth)
        if fetched is not None and fetched.body != data:
            api.stats.problem(
                "content mismatch", f"{file_id}: {len(fetched.body)} != {len(data)} bytes"
            )
        if api.expect("ack", "POST", f"{base}/ack", headers=ws.auth) is not None:
            with ledger.lock:
                ledger.acked += 1


# --- background threads: sampler and sweep enqueuer ---------------------------------------

SAMPLE_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE acked_at IS NOT NULL),
       count(*) FILTER (WHERE acked_at IS NULL AND expires_at <= now()),
       pg_total_relation_size('pending_uploads'),
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'pending_uploads')
  FROM pending_uploads
"""


def db_one(sql: str, params: Any = None) -> tuple:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


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
    from molecule.processes import process_rss_bytes

    found = {}
    for role, pids in stack.pids().items():
        for pid in pids:
            rss = process_rss_bytes(pid)
            if rss is not None:
                found[pid] = (role, rss)
    return found


def swept_counters(stack: Any) -> dict[str, float]:
    from molecule.processes import metric_value

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


def soak(options: argparse.Namespace, report: Report, scratch: Path) -> None:
    server_url = os.environ.get("DATABASE_URL", "")
    if server_url:
        say(f"creating database {options.database_name} on the DATABASE_URL server")
        database_url = database_recreate(server_url, options.database_name)
        if not options.keep_db:
            atexit.register(database_drop, server_url, options.database_name)
    else:
        say("starting a throwaway embedded PostgreSQL")
        database_url = embedded_server_url()
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

    from molecule.processes import ServiceStack

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
            "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p95_ms": round(percentile(values, 95) * 1000, 1),
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


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Soak the real service with upload traffic and check it stays healthy."
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


if __name__ == "__main__":
    sys.exit(main())
