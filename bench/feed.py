"""Feed visibility: how long after its commit a row reaches a since_id poller, with and
without a large upload to the same workspace in flight.

A writer commits one activity row every few milliseconds on its own connection (the same
INSERT the API runs, trigger included) and notes when its COMMIT returned. A poller follows
``since_id`` through gunicorn as the runtime does, back to back, and notes when each row first
arrives. The wait is arrival minus commit, so it includes one poll's round trip. Meanwhile an
observer samples the oldest open write transaction: what a snapshot-xmin feed (the alternative
the docs describe) would make every row wait for.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench import loadgen
from bench.config import Scale
from bench.database import BenchDatabases
from bench.stats import percentile

logger = logging.getLogger("bench")

WRITE_INTERVAL = 0.02
INSERT_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, method, summary)
VALUES (%s, 'a2a_receive', 'message/send', 'feed bench') RETURNING id
"""
# The age of the oldest transaction that has written something, other than this session's.
OLDEST_WRITE_SQL = """
SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0)
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
"""


def latency(values: list[float]) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return {
        "count": len(values),
        "p50_ms": rounded(percentile(values, 50)),
        "p99_ms": rounded(percentile(values, 99)),
        "max_ms": rounded(max(values, default=None)),
    }


@dataclass
class Phase:
    """One measured stretch: rows committed, rows seen, and what the side threads recorded."""

    committed: dict[int, float] = field(default_factory=dict)
    # The writer's last row, and whether it has stopped: the poller then drains up to it.
    last_committed: int = 0
    writes_done: threading.Event = field(default_factory=threading.Event)
    write_ms: list[float] = field(default_factory=list)
    seen: dict[int, float] = field(default_factory=dict)
    duplicates: int = 0
    poll_ms: list[float] = field(default_factory=list)
    upload_seconds: list[float] = field(default_factory=list)
    oldest_write_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        waits = [
            (self.seen[row] - at) * 1000 for row, at in self.committed.items() if row in self.seen
        ]
        figures: dict[str, Any] = {
            "rows_committed": len(self.committed),
            "rows_missed": len(set(self.committed) - set(self.seen)),
            "rows_delivered_twice": self.duplicates,
            "visible_after_commit": latency(waits),
            "write": latency(self.write_ms),
            "poll": latency(self.poll_ms),
            "oldest_write_transaction_ms": round(self.oldest_write_s * 1000, 1),
        }
        if self.upload_seconds:
            figures["uploads"] = len(self.upload_seconds)
            figures["upload_request_ms"] = latency([s * 1000 for s in self.upload_seconds])
        if self.errors:
            figures["first_errors"] = self.errors[:3]
        return figures


class FeedBench:
    def __init__(self, db: BenchDatabases, port: int) -> None:
        self.db = db
        self.port = port
        self.workspace_id, token = loadgen.register_workspace(port, "feed")
        self.auth = {"Authorization": f"Bearer {token}"}
        self.path = f"/workspaces/{self.workspace_id}"

    def run(self, seconds: float, upload_bytes: int | None) -> Phase:
        phase = Phase()
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            (cursor,) = conn.execute(INSERT_SQL, [self.workspace_id]).fetchone()
        stop = threading.Event()
        threads = [
            threading.Thread(target=self._write, args=(phase, stop)),
            threading.Thread(target=self._observe, args=(phase, stop)),
        ]
        if upload_bytes:
            threads.append(threading.Thread(target=self._upload, args=(phase, stop, upload_bytes)))
        poller = threading.Thread(target=self._poll, args=(phase, cursor))
        for thread in [*threads, poller]:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        # The poller stops once it has caught up with the writer's last row.
        phase.writes_done.set()
        poller.join()
        return phase

    def _write(self, phase: Phase, stop: threading.Event) -> None:
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                (row,) = conn.execute(INSERT_SQL, [self.workspace_id]).fetchone()
                done = time.perf_counter()
                phase.committed[row] = done
                phase.last_committed = row
                phase.write_ms.append((done - started) * 1000)
                time.sleep(WRITE_INTERVAL)

    def _poll(self, phase: Phase, cursor: int) -> None:
        conn = loadgen.http_session(self.port)()
        try:
            while not (phase.writes_done.is_set() and cursor >= phase.last_committed):
                started = time.perf_counter()
                rows = json.loads(
                    loadgen.http_call(
                        conn, "GET", f"{self.path}/activity?since_id={cursor}", headers=self.auth
                    )
                )
                arrived = time.perf_counter()
                phase.poll_ms.append((arrived - started) * 1000)
                for row in rows:
                    if row["id"] in phase.seen:
                        phase.duplicates += 1
                    phase.seen.setdefault(row["id"], arrived)
                if rows:
                    cursor = rows[-1]["id"]
        finally:
            conn.close()

    def _upload(self, phase: Phase, stop: threading.Event, size: int) -> None:
        content = random.Random(size).randbytes(size)
        body, content_type = loadgen.multipart("big.bin", content)
        del content
        headers = {**self.auth, "Content-Type": content_type}
        conn = loadgen.http_session(self.port)()
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    loadgen.http_call(
                        conn, "POST", f"{self.path}/chat/uploads", body=body, headers=headers
                    )
                except (loadgen.HttpError, OSError) as exc:
                    phase.errors.append(repr(exc))
                    conn.close()
                    conn = loadgen.http_session(self.port)()
                    continue
                phase.upload_seconds.append(time.perf_counter() - started)
        finally:
            conn.close()

    def _observe(self, phase: Phase, stop: threading.Event) -> None:
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            while not stop.is_set():
                (age,) = conn.execute(OLDEST_WRITE_SQL).fetchone()
                phase.oldest_write_s = max(phase.oldest_write_s, float(age))
                time.sleep(0.01)


def bench_feed(db: BenchDatabases, scale: Scale) -> dict[str, Any]:
    with loadgen.served(db, "feed") as port:
        bench = FeedBench(db, port)
        figures: dict[str, Any] = {}
        for name, upload in (("quiet", None), ("upload_in_flight", scale.feed_upload_bytes)):
            figures[name] = bench.run(scale.feed_seconds, upload).figures()
            logger.info("feed %s: %s", name, figures[name])
    figures["setup"] = {
        "upload_bytes": scale.feed_upload_bytes,
        "seconds_per_phase": scale.feed_seconds,
        "write_interval_ms": WRITE_INTERVAL * 1000,
        "web_workers": 2,
        "workspace": "one: the writer, the uploader and the poller all use it",
    }
    return {"feed": figures}
