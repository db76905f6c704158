"""Real concurrency on PostgreSQL: sweepers against traffic, phantom-busy against heartbeats."""

from __future__ import annotations

import io
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from molecule.models import Workspace
from pending_uploads import conf
from pending_uploads.managers import NewUpload, SweepResult
from pending_uploads.models import PendingUpload
from pending_uploads.services import uploads_sweep
from scheduler.services import workspaces_reset_phantom_busy
from tests.helpers import (
    RegisteredWorkspace,
    assert_metric_delta,
    assert_metric_deltas,
    metrics_saved,
    run_sql,
    sql_installed,
    upload_sweep,
)

pytestmark = pytest.mark.django_db(transaction=True)

# Every bound is both a count and a time, so a stuck thread fails the test instead of hanging it.
TRAFFIC_SECONDS = 4.0
MAX_ITERATIONS = 2_000
JOIN_TIMEOUT = 60.0

# Instrumentation, not a mock: the real DELETE fires this trigger, which records the row as it
# was deleted and the deleting transaction's now(), the clock the sweep's predicate used.
AUDIT_SETUP = (
    """
    CREATE TABLE race_deleted_uploads (
        file_id uuid PRIMARY KEY,
        acked_at timestamptz,
        expires_at timestamptz NOT NULL,
        deleted_at timestamptz NOT NULL
    )
    """,
    """
    CREATE FUNCTION race_audit_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO race_deleted_uploads VALUES (OLD.file_id, OLD.acked_at, OLD.expires_at, now());
        RETURN OLD;
    END
    $$
    """,
    """
    CREATE TRIGGER race_audit_delete AFTER DELETE ON pending_uploads
    FOR EACH ROW EXECUTE FUNCTION race_audit_delete()
    """,
)
AUDIT_TEARDOWN = (
    "DROP TRIGGER IF EXISTS race_audit_delete ON pending_uploads",
    "DROP FUNCTION IF EXISTS race_audit_delete()",
    "DROP TABLE IF EXISTS race_deleted_uploads",
)


@dataclass(frozen=True)
class Deleted:
    acked_at: Any
    expires_at: Any
    deleted_at: Any


@pytest.fixture
def deletion_audit() -> Iterator[Callable[[], dict[uuid.UUID, Deleted]]]:
    def read() -> dict[uuid.UUID, Deleted]:
        rows = run_sql("SELECT file_id, acked_at, expires_at, deleted_at FROM race_deleted_uploads")
        return {file_id: Deleted(*rest) for file_id, *rest in rows}

    with sql_installed(AUDIT_SETUP, AUDIT_TEARDOWN):
        yield read


class ThreadErrors:
    """Exceptions raised in worker threads, re-raised by the test thread."""

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        # Broken on the first error, so the other threads stop waiting for the failed one.
        self._barrier = barrier

    def run(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        def body() -> None:
            try:
                target(*args)
            except BaseException as exc:
                with self._lock:
                    self.errors.append(exc)
                if self._barrier is not None:
                    self._barrier.abort()
                raise
            finally:
                # Each thread opened its own connection; leave none behind for the flush.
                connection.close()

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        return thread

    def join(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
            assert not thread.is_alive(), "a worker thread did not finish"
        if self.errors:
            raise self.errors[0]


def file_id_of(upload_json: dict[str, Any]) -> uuid.UUID:
    # uri is platform-pending:<workspace_id>/<file_id>
    return uuid.UUID(upload_json["uri"].rsplit("/", 1)[1])


def put_row(workspace_id: uuid.UUID, ttl: timedelta, size: int = 16) -> uuid.UUID:
    upload = NewUpload("race.bin", "application/octet-stream", size, io.BytesIO(b"r" * size))
    row = PendingUpload.objects.put(workspace_id, upload, ttl=ttl, max_bytes=conf.max_file_bytes())
    return row.file_id


def sweeper(stop: threading.Event, totals: list[SweepResult], lock: threading.Lock) -> None:
    """Sweep with zero retention until stopped, then once more after the traffic has ended."""
    total = SweepResult(0, 0)
    for _ in range(MAX_ITERATIONS):
        stopping = stop.is_set()
        total += upload_sweep(timedelta(0), batch_size=50)
        if stopping:
            break
    with lock:
        totals.append(total)


@dataclass
class Ledger:
    """What the traffic threads did, for comparison with what the database says happened."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # file_id -> how it was created: "api" (24 h TTL) or "short" (manager, TTL of seconds or less)
    created: dict[uuid.UUID, str] = field(default_factory=dict)
    acked_ok: set[uuid.UUID] = field(default_factory=set)
    statuses: Counter = field(default_factory=Counter)
    # Statuses of acks sent after the thread saw that a sweep had deleted the row.
    acks_after_deletion: list[int] = field(default_factory=list)

    def record(self, what: str, status: int) -> None:
        with self.lock:
            self.statuses[what, status] += 1


SHORT_TTLS = (timedelta(seconds=-1), timedelta(milliseconds=200), timedelta(seconds=1))


def traffic(ws: RegisteredWorkspace, ledger: Ledger, deadline: float, seed: int) -> None:
    rng = random.Random(seed)
    client = Client(raise_request_exception=False)
    pending: list[uuid.UUID] = []
    history: list[uuid.UUID] = []
    for _ in range(MAX_ITERATIONS):
        if time.monotonic() > deadline:
            break
        if rng.random() < 0.5:
            files = [
                SimpleUploadedFile(f"f{n}.bin", rng.randbytes(rng.randint(1, 256)))
                for n in range(rng.randint(1, 3))
            ]
            response = client.post(ws.url("chat/uploads"), {"files": files}, **ws.auth)
            ledger.record("upload", response.status_code)
            ids = [file_id_of(f) for f in response.json()["files"]]
            origin = "api"
        else:
            ids = [put_row(ws.id, rng.choice(SHORT_TTLS))]
            origin = "short"
        with ledger.lock:
            ledger.created.update(dict.fromkeys(ids, origin))
        pending.extend(ids)
        history.extend(ids)
        rng.shuffle(pending)
        # Fetch and ack about half of what is pending; the rest waits (and may expire).
        for file_id in pending[: max(1, len(pending) // 2)]:
            pending.remove(file_id)
            if rng.random() < 0.7:
                response = client.get(ws.url(f"pending-uploads/{file_id}/content"), **ws.auth)
                ledger.record("fetch", response.status_code)
            response = client.post(ws.url(f"pending-uploads/{file_id}/ack"), **ws.auth)
            ledger.record("ack", response.status_code)
            # A raced ack is a 200 for a row the sweep deleted (as expired) during the ack.
            if response.status_code == 200 and not response.json().get("raced"):
                with ledger.lock:
                    ledger.acked_ok.add(file_id)
        # Ack a row this thread has seen the sweepers delete.
        candidate = rng.choice(history)
        if not PendingUpload.objects.filter(pk=candidate).exists():
            response = client.post(ws.url(f"pending-uploads/{candidate}/ack"), **ws.auth)
            with ledger.lock:
                ledger.acks_after_deletion.append(response.status_code)


def test_traffic_against_four_sweepers_deletes_exactly_the_eligible_rows(
    register: Callable[..., RegisteredWorkspace],
    deletion_audit: Callable[[], dict[uuid.UUID, Deleted]],
) -> None:
    workspaces = [register(f"racer-{n}") for n in range(3)]
    ledger = Ledger()
    totals: list[SweepResult] = []
    totals_lock = threading.Lock()
    stop = threading.Event()
    errors = ThreadErrors()
    sweepers = [errors.run(sweeper, stop, totals, totals_lock) for _ in range(4)]
    deadline = time.monotonic() + TRAFFIC_SECONDS
    clients = [
        errors.run(traffic, ws, ledger, deadline, seed) for seed, ws in enumerate(workspaces)
    ]
    try:
        errors.join(clients)
    finally:
        stop.set()
        errors.join(sweepers)

    created = set(ledger.created)
    remaining = dict(
        PendingUpload.objects.filter(file_id__in=created).values_list("file_id", "acked_at")
    )
    disappeared = created - set(remaining)
    deleted = deletion_audit()
    reported = sum(totals, SweepResult(0, 0))

    # Nothing answered 5xx: uploads 200, fetches and acks 200 or 404.
    assert {status for (_, status) in ledger.statuses} <= {200, 404}, ledger.statuses
    assert all(status == 200 for (what, status) in ledger.statuses if what == "upload")
    # The race happened: rows of both kinds were swept while traffic ran.
    assert reported.acked > 0
    assert reported.expired > 0
    # What the sweeps reported is exactly what disappeared, kind by kind.
    assert set(deleted) == disappeared
    assert reported.total == len(disappeared)
    assert reported.acked == sum(1 for row in deleted.values() if row.acked_at is not None)
    assert reported.expired == sum(1 for row in deleted.values() if row.acked_at is None)
    # Every deletion met the sweep's predicate on the deleting transaction's clock.
    for file_id, row in deleted.items():
        if row.acked_at is None:
            assert row.expires_at <= row.deleted_at, f"unexpired unacked row {file_id} deleted"
        else:
            assert row.acked_at <= row.deleted_at, file_id
    # The last sweeps ran after the traffic stopped, with zero retention: no acked row is left.
    assert all(acked_at is None for acked_at in remaining.values())
    # An ack answered 200 is never lost: the row was counted as acked.
    assert all(deleted[file_id].acked_at is not None for file_id in ledger.acked_ok)
    # Unacked rows with a 24 h TTL must all still be there.
    assert {
        file_id
        for file_id, origin in ledger.created.items()
        if origin == "api" and file_id not in ledger.acked_ok
    } <= set(remaining)
    # An ack on a row a sweep had already deleted is a clean 404.
    assert ledger.acks_after_deletion
    assert set(ledger.acks_after_deletion) == {404}


def test_ack_of_an_expired_unswept_row_is_404_and_it_is_swept_as_expired(
    api: Client, poll_workspace: RegisteredWorkspace
) -> None:
    ws = poll_workspace
    file_id = put_row(ws.id, timedelta(hours=1))
    PendingUpload.objects.filter(pk=file_id).update(
        expires_at=TransactionNow() - timedelta(seconds=1)
    )

    response = api.post(ws.url(f"pending-uploads/{file_id}/ack"), **ws.auth)

    assert response.status_code == 404
    assert response.json() == {"error": "no such pending upload"}
    assert PendingUpload.objects.get(pk=file_id).acked_at is None
    before = metrics_saved()
    report = uploads_sweep(ack_retention=timedelta(0))
    assert report.result == SweepResult(acked=0, expired=1)
    swept = {"acked": 0, "expired": 1}
    assert_metric_deltas(before, "molecule_pending_uploads_swept_total", "outcome", swept)
    assert not PendingUpload.objects.filter(pk=file_id).exists()


def test_acks_racing_sweepers_on_expired_rows_get_404_and_count_as_expired(
    register: Callable[..., RegisteredWorkspace],
    deletion_audit: Callable[[], dict[uuid.UUID, Deleted]],
) -> None:
    ws = register("expiring")
    expired = [put_row(ws.id, timedelta(hours=1)) for _ in range(120)]
    live = [put_row(ws.id, timedelta(hours=1)) for _ in range(120)]
    PendingUpload.objects.filter(pk__in=expired).update(
        expires_at=TransactionNow() - timedelta(seconds=1)
    )
    statuses: dict[uuid.UUID, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(5, timeout=JOIN_TIMEOUT)

    def acker(file_ids: list[uuid.UUID]) -> None:
        client = Client(raise_request_exception=False)
        start.wait()
        for file_id in file_ids:
            response = client.post(ws.url(f"pending-uploads/{file_id}/ack"), **ws.auth)
            with lock:
                statuses[file_id] = response.status_code

    totals: list[SweepResult] = []

    def racing_sweeper() -> None:
        start.wait()
        total = SweepResult(0, 0)
        for _ in range(100):
            total += upload_sweep(timedelta(0), batch_size=10)
        with lock:
            totals.append(total)

    both = expired + live
    random.Random(7).shuffle(both)
    errors = ThreadErrors(start)
    threads = [errors.run(acker, both[n::3]) for n in range(3)]
    threads += [errors.run(racing_sweeper) for _ in range(2)]
    errors.join(threads)
    # One sweep after the race collects the acked rows the racing sweeps missed.
    reported = sum(totals, SweepResult(0, 0)) + upload_sweep(timedelta(0))

    assert {statuses[file_id] for file_id in expired} == {404}
    assert {statuses[file_id] for file_id in live} == {200}
    assert reported == SweepResult(acked=len(live), expired=len(expired))
    deleted = deletion_audit()
    assert {f for f, row in deleted.items() if row.acked_at is None} == set(expired)
    assert {f for f, row in deleted.items() if row.acked_at is not None} == set(live)


PHANTOM_ROUNDS = 30
HEARTBEAT_THREADS = 4
BUSY_BEFORE = 3
HEARTBEAT_TASKS = 5


def heartbeat(client: Client, ws: RegisteredWorkspace) -> int:
    body = {"workspace_id": str(ws.id), "active_tasks": HEARTBEAT_TASKS, "current_task": "hb"}
    response = client.post(
        "/registry/heartbeat", json.dumps(body), content_type="application/json", **ws.auth
    )
    return response.status_code


def phantom_outcome_is_serial(busy_before: bool, counted: bool, final: tuple[int, str]) -> bool:
    """Whether (final state, counted) matches one of the two serial orders of the round."""
    after_heartbeat = (HEARTBEAT_TASKS, "hb")
    after_reset = (0, "")
    # Sweep first: it resets only a busy workspace, then the heartbeat's value stays.
    sweep_first = (after_heartbeat, busy_before)
    # Heartbeat first: the workspace is busy and silent, so the sweep resets it.
    heartbeat_first = (after_reset, True)
    return (final, counted) in (sweep_first, heartbeat_first)


def test_phantom_busy_sweep_against_heartbeats_is_serializable(
    register: Callable[..., RegisteredWorkspace],
) -> None:
    # No activity rows at all: every busy workspace is silent, so heartbeats alone decide.
    workspaces = [register(f"hb-{n:02d}") for n in range(16)]
    busy_ids = {ws.id for ws in workspaces[::2]}
    idle_ids = {ws.id for ws in workspaces[1::2]}
    barrier = threading.Barrier(HEARTBEAT_THREADS + 2, timeout=JOIN_TIMEOUT)
    heartbeat_statuses: Counter = Counter()
    reports: list[set[uuid.UUID]] = []
    lock = threading.Lock()

    def heartbeats(mine: list[RegisteredWorkspace], seed: int) -> None:
        rng = random.Random(seed)
        client = Client(raise_request_exception=False)
        for _ in range(PHANTOM_ROUNDS):
            barrier.wait()
            for ws in rng.sample(mine, len(mine)):
                status = heartbeat(client, ws)
                with lock:
                    heartbeat_statuses[status] += 1
            barrier.wait()

    def phantom_sweeper() -> None:
        rng = random.Random(99)
        for _ in range(PHANTOM_ROUNDS):
            barrier.wait()
            # A varying head start for the heartbeats, so the sweep lands at different points.
            time.sleep(rng.uniform(0, 0.01))
            report = workspaces_reset_phantom_busy(stale_after=timedelta(minutes=10))
            with lock:
                reports.append({ref.id for ref in report.workspaces})
            barrier.wait()

    errors = ThreadErrors(barrier)
    before = metrics_saved()
    threads = [
        errors.run(heartbeats, workspaces[n::HEARTBEAT_THREADS], n)
        for n in range(HEARTBEAT_THREADS)
    ]
    threads.append(errors.run(phantom_sweeper))
    violations = []
    try:
        for round_number in range(PHANTOM_ROUNDS):
            Workspace.objects.filter(pk__in=busy_ids).update(
                active_tasks=BUSY_BEFORE, current_task="old"
            )
            Workspace.objects.filter(pk__in=idle_ids).update(active_tasks=0, current_task="")
            barrier.wait()
            barrier.wait()
            final = {
                pk: (tasks, task)
                for pk, tasks, task in Workspace.objects.values_list(
                    "pk", "active_tasks", "current_task"
                )
            }
            counted = reports[round_number]
            violations += [
                (round_number, ws.id, final[ws.id], ws.id in counted)
                for ws in workspaces
                if not phantom_outcome_is_serial(ws.id in busy_ids, ws.id in counted, final[ws.id])
            ]
    except BaseException:
        # Release the threads; a thread's own error, if any, is the one worth showing.
        barrier.abort()
        errors.join(threads)
        raise
    # Not aborted on success: a thread still waking from the last wait would see it broken.
    errors.join(threads)

    assert violations == []
    assert heartbeat_statuses == {200: PHANTOM_ROUNDS * len(workspaces)}
    assert len(reports) == PHANTOM_ROUNDS
    resets = sum(len(ids) for ids in reports)
    assert_metric_delta(before, resets, "molecule_phantom_busy_resets_total")
