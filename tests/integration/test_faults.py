"""Faults: sweeps whose connection is killed, an unreachable database, and jobs that raise."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from devtools.processes import ServiceStack, database_url_from_settings, free_port
from molecule import tasks as molecule_tasks
from molecule.models import Workspace
from pending_uploads import services as uploads_services
from pending_uploads import tasks as uploads_tasks
from pending_uploads.models import PendingUpload
from scheduler import services as scheduler_services
from scheduler import tasks as scheduler_tasks
from tests.helpers import (
    assert_metric_delta,
    assert_metric_deltas,
    metrics_saved,
    run_sql,
    service_stack,
)
from tests.integration.conftest import (
    ACKED_OLD,
    ACKED_RECENT,
    EXPIRED,
    LIVE,
    on_every_web_worker,
    uploads_count_by_kind,
    uploads_insert,
    wait_until,
)

SWEPT = "molecule_pending_uploads_swept_total"


RESETS = "molecule_phantom_busy_resets_total"


class JobThread(threading.Thread):
    """Run a job on its own database connection, as a django-q2 worker would."""

    def __init__(self, job: Callable[[], dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.job = job
        self.backend_pid: int | None = None
        self.connected = threading.Event()
        self.result: dict[str, Any] | None = None
        self.escaped: BaseException | None = None

    def run(self) -> None:
        try:
            connection.ensure_connection()
            self.backend_pid = connection.connection.info.backend_pid
            self.connected.set()
            self.result = self.job()
        except BaseException as exc:  # the point of the test is that nothing gets here
            self.escaped = exc
        finally:
            self.connected.set()
            connection.close()

    def outcome(self, timeout: float = 60.0) -> dict[str, Any]:
        self.join(timeout)
        assert not self.is_alive(), "the job did not finish"
        assert self.escaped is None, f"the job raised {self.escaped!r}"
        assert self.result is not None
        return self.result


def admin_connection() -> psycopg.Connection:
    """A connection of our own, outside Django, as an operator's psql would be."""
    return psycopg.connect(database_url_from_settings(connection.settings_dict), autocommit=True)


# --- the sweep's connection is killed mid-run -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sweep_killed_mid_run_counts_exactly_and_the_next_run_finishes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    uploads_insert(ACKED_OLD, 30_000)
    uploads_insert(EXPIRED, 30_000)
    uploads_insert(ACKED_RECENT, 500)
    uploads_insert(LIVE, 500)
    start = uploads_count_by_kind()
    before = metrics_saved()
    caplog.set_level(logging.INFO, logger="pending_uploads")

    with override_settings(PENDING_UPLOADS_SWEEP_BATCH_SIZE=500):
        # Let some batches commit, then hold a SHARE lock: it waits for the batch in flight to
        # commit and then blocks the next one, so the kill lands mid-run, between batches.
        first = terminate_when_blocked(
            uploads_tasks.sweep_pending_uploads,
            "pending_uploads",
            lambda: sum(uploads_count_by_kind().values()) < sum(start.values()),
        )

        middle = uploads_count_by_kind()
        deleted_acked = start[ACKED_OLD.name] - middle[ACKED_OLD.name]
        deleted_expired = start[EXPIRED.name] - middle[EXPIRED.name]
        assert "error" in first
        # Killed mid-run: some rows went, some are left for the next run.
        assert 0 < deleted_acked + deleted_expired < start[ACKED_OLD.name] + start[EXPIRED.name]
        assert_metric_deltas(
            before,
            SWEPT,
            "outcome",
            {"error": 1, "acked": deleted_acked, "expired": deleted_expired},
        )
        failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(r.exc_info for r in failures), "the failure was logged without a traceback"
        assert any("sweep failed" in r.getMessage() for r in failures)

        second = JobThread(uploads_tasks.sweep_pending_uploads)
        second.start()
        assert second.outcome() == {
            "acked": middle[ACKED_OLD.name],
            "expired": middle[EXPIRED.name],
        }

    end = uploads_count_by_kind()
    assert end == {
        ACKED_OLD.name: 0,
        EXPIRED.name: 0,
        ACKED_RECENT.name: start[ACKED_RECENT.name],
        LIVE.name: start[LIVE.name],
    }
    assert_metric_deltas(
        before,
        SWEPT,
        "outcome",
        {"acked": start[ACKED_OLD.name], "expired": start[EXPIRED.name], "error": 1},
    )


# --- the database is unreachable -------------------------------------------------------------


class TcpProxy:
    """A TCP listener on 127.0.0.1 that forwards to PostgreSQL, and can be cut and restored."""

    def __init__(self, target: tuple[str, int] | str, *, mode: str = "forward") -> None:
        self.target = target
        # forward: pass bytes through; drop: accept, then hang up before the server answers.
        self.mode = mode
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings_dict: dict[str, Any]) -> TcpProxy:
        """Target the test database's server, over TCP or its Unix socket (embedded server)."""
        options = settings_dict.get("OPTIONS") or {}
        host = str(options.get("host") or settings_dict.get("HOST") or "")
        port = int(options.get("port") or settings_dict.get("PORT") or 5432)
        if host.startswith("/"):
            return cls(f"{host}/.s.PGSQL.{port}")
        return cls((host or "127.0.0.1", port))

    def database_url(self, settings_dict: dict[str, Any]) -> str:
        options = {k: v for k, v in (settings_dict.get("OPTIONS") or {}).items() if k != "host"}
        through_proxy = {**settings_dict, "HOST": "127.0.0.1", "PORT": self.port}
        return database_url_from_settings({**through_proxy, "OPTIONS": options})

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The restored proxy binds the port again while old connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and hang up every forwarded connection."""
        with self._lock:
            doomed = [self._listener, *self._sockets] if self._listener else list(self._sockets)
            self._listener = None
            self._sockets.clear()
        for sock in doomed:
            # shutdown() wakes a thread blocked in accept() or recv(); close() alone does not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _upstream(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.connect(self.target)
        return upstream

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.mode == "drop":
                client.close()
                continue
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def http(
    method: str, url: str, *, body: Any = None, token: str | None = None
) -> tuple[int, str, Any]:
    """One request; return (status, content type, parsed JSON or raw text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    content_type = headers.get("Content-Type", "")
    try:
        return status, content_type, json.loads(raw)
    except ValueError:
        return status, content_type, raw.decode(errors="replace")


def register_body(workspace_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "id": str(workspace_id or uuid.uuid4()),
        "delivery_mode": "poll",
        "agent_card": {"name": "fault-test"},
    }


# gunicorn and the proxy that is its only way to PostgreSQL.
ProxiedWeb = tuple[ServiceStack, TcpProxy]


@contextlib.contextmanager
def web_through_proxy(mode: str, workdir: Path) -> Iterator[ProxiedWeb]:
    """gunicorn (2 workers, no qcluster) whose only way to PostgreSQL is a TcpProxy."""
    proxy = TcpProxy.for_settings(connection.settings_dict)
    proxy.mode = mode
    proxy.start()
    stack = service_stack(
        workdir, database_url=proxy.database_url(connection.settings_dict), web_workers=2
    )
    try:
        yield stack.start(qcluster=False), proxy
    finally:
        stack.stop()
        proxy.cut()


@pytest.fixture
def forwarded_web(transactional_db: None, tmp_path: Path) -> Iterator[ProxiedWeb]:
    with web_through_proxy("forward", tmp_path) as web:
        yield web


@pytest.fixture
def dropped_web(transactional_db: None, tmp_path: Path) -> Iterator[ProxiedWeb]:
    with web_through_proxy("drop", tmp_path) as web:
        yield web


def assert_every_worker_answers_503_json(stack: ServiceStack, call: Callable[[], Any]) -> None:
    for status, content_type, answer in on_every_web_worker(stack, call):
        assert (status, content_type) == (503, "application/json"), (answer, stack.log_tail())
        assert answer["error"]


@pytest.mark.slow
def test_unreachable_database_gives_503_json_and_recovers_without_restart(
    forwarded_web: ProxiedWeb,
) -> None:
    stack, proxy = forwarded_web
    workspace_id = uuid.uuid4()
    status, _, registered = http(
        "POST", stack.url("/registry/register"), body=register_body(workspace_id)
    )
    assert status == 200, (registered, stack.log_tail())
    token = registered["auth_token"]
    pending = stack.url(f"/workspaces/{workspace_id}/pending-uploads")

    def list_pending() -> tuple[int, str, Any]:
        return http("GET", pending, token=token)

    def register_new() -> tuple[int, str, Any]:
        return http("POST", stack.url("/registry/register"), body=register_body())

    # Every worker holds a persistent connection (CONN_MAX_AGE) through the proxy.
    assert {answer[:2] for answer in on_every_web_worker(stack, list_pending)} == {
        (200, "application/json")
    }
    pids = stack.pids()

    proxy.cut()
    for call in (list_pending, register_new):
        assert_every_worker_answers_503_json(stack, call)
    for status, _, text in on_every_web_worker(stack, lambda: http("GET", stack.url("/metrics"))):
        assert status == 200
        # The request metrics are served; the database-backed families wait for the database.
        assert "django_http_requests_before_middlewares_total" in text
        assert "molecule_pending_uploads_swept_total" not in text

    proxy.start()
    assert {answer[:2] for answer in on_every_web_worker(stack, list_pending)} == {
        (200, "application/json")
    }
    assert all(answer == [] for _, _, answer in on_every_web_worker(stack, list_pending))
    for status, _, answer in on_every_web_worker(stack, register_new):
        assert status == 200, answer
        assert answer["auth_token"]
    # Recovered by the same processes: nothing was restarted.
    assert stack.pids() == pids


@pytest.mark.slow
def test_database_hanging_up_at_connect_gives_503_json(
    dropped_web: ProxiedWeb,
) -> None:
    stack, _ = dropped_web
    assert_every_worker_answers_503_json(
        stack, lambda: http("POST", stack.url("/registry/register"), body=register_body())
    )
    assert http("GET", stack.url("/metrics"))[0] == 200
    assert "Traceback" not in stack.log_text()


# --- a job raises unexpectedly ---------------------------------------------------------------


class Injection(NamedTuple):
    job: Callable[[], dict[str, Any]]
    target: Any
    attribute: str
    exception: Exception
    # False when the work itself committed and only an afterthought (a gauge) failed.
    sweep_failed: bool


UPLOADS_JOB = uploads_tasks.sweep_pending_uploads
PHANTOM_JOB = scheduler_tasks.sweep_phantom_busy
WORKSPACE_MANAGER = type(Workspace.objects)
CONNECTION_LOST = OperationalError("server closed the connection unexpectedly")

# From deep in a manager up to the service the job calls, then the gauges refreshed afterwards.
INJECTIONS = {
    "uploads-manager": Injection(
        UPLOADS_JOB, PendingUpload.objects, "sweep", RuntimeError("injected failure"), True
    ),
    "uploads-service": Injection(
        UPLOADS_JOB, uploads_services, "uploads_sweep", RuntimeError("injected failure"), True
    ),
    "uploads-backlog-gauges": Injection(
        UPLOADS_JOB, PendingUpload.objects, "backlog", CONNECTION_LOST, False
    ),
    "phantom-manager": Injection(
        PHANTOM_JOB,
        WORKSPACE_MANAGER,
        "reset_phantom_busy",
        RuntimeError("injected failure"),
        True,
    ),
    "phantom-service": Injection(
        PHANTOM_JOB,
        scheduler_services,
        "workspaces_reset_phantom_busy",
        RuntimeError("injected failure"),
        True,
    ),
    "phantom-active-gauge": Injection(
        PHANTOM_JOB, WORKSPACE_MANAGER, "count_active", CONNECTION_LOST, False
    ),
}


def assert_job_errors(saved: list, job: Callable[[], dict[str, Any]], diff: int) -> None:
    if job is UPLOADS_JOB:
        assert_metric_delta(saved, diff, SWEPT, outcome="error")
    else:
        assert_metric_delta(saved, diff, "molecule_phantom_busy_sweep_errors_total")


# Transactional: after a failure the jobs drop the connection (close_old_connections), which
# a test wrapped in a transaction could not survive; a worker runs in autocommit like this.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("injection", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_a_raising_job_is_logged_counted_and_the_next_run_works(
    injection: Injection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    register: Callable[..., Any],
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise injection.exception

    job = injection.job
    before = metrics_saved()
    with monkeypatch.context() as patch:
        patch.setattr(injection.target, injection.attribute, fail)
        result = job()  # an exception escaping here is the failure this test guards against
    assert ("error" in result) is injection.sweep_failed, result
    assert_job_errors(before, job, int(injection.sweep_failed))
    tracebacks = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert tracebacks, "the failure was not logged with its traceback"

    # The next run, unpatched, does its work.
    if job is UPLOADS_JOB:
        uploads_insert(ACKED_OLD, 3)
        uploads_insert(EXPIRED, 2)
        assert job() == {"acked": 3, "expired": 2}
        assert_metric_delta(before, 3, SWEPT, outcome="acked")
    else:
        register("stuck", active_tasks=2)
        assert job() == {"reset": 1}
        assert_metric_delta(before, 1, RESETS)
    assert_job_errors(before, job, int(injection.sweep_failed))


# --- the activity and phantom-busy sweeps' connections are killed ---------------------------


def terminate_when_blocked(
    job: Callable[[], dict[str, Any]], table: str, started: Callable[[], bool] | None
) -> dict[str, Any]:
    """Run ``job``; once ``started()`` (None: before it starts), lock ``table`` so that its next
    statement waits, then pg_terminate_backend its session, as an operator or a failover
    would. Its outcome."""
    with admin_connection() as admin, admin.transaction():
        runner = JobThread(job)
        if started is None:
            admin.execute(f"LOCK TABLE {table} IN SHARE MODE")
        runner.start()
        assert runner.connected.wait(10)
        if started is not None:
            wait_until(started, timeout=30, interval=0.005, what=f"{job.__name__} to start")
            admin.execute(f"LOCK TABLE {table} IN SHARE MODE")
        wait_until(
            lambda: admin.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                [runner.backend_pid],
            ).fetchone()[0],
            timeout=10,
            interval=0.01,
            what=f"{job.__name__} to block on the lock",
        )
        admin.execute("SELECT pg_terminate_backend(%s)", [runner.backend_pid])
        return runner.outcome()


ACTIVITY_SWEPT = "molecule_activity_logs_swept_total"
ACTIVITY_ROWS_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, created_at)
SELECT %s, 'old', now() - interval '40 days' - g * interval '1 second'
  FROM generate_series(1, %s) AS g
"""


def activity_rows() -> int:
    with admin_connection() as admin:
        return admin.execute("SELECT count(*) FROM activity_logs").fetchone()[0]


@pytest.mark.django_db(transaction=True)
@override_settings(ACTIVITY_SWEEP_BATCH_SIZE=200)
def test_activity_sweep_killed_mid_run_counts_exactly_and_the_next_run_finishes(
    register: Callable[..., Any],
) -> None:
    run_sql(ACTIVITY_ROWS_SQL, [register("old").id, 20_000])
    before = metrics_saved()

    outcome = terminate_when_blocked(
        molecule_tasks.sweep_activity, "activity_logs", lambda: activity_rows() < 20_000
    )

    deleted = 20_000 - activity_rows()
    assert "error" in outcome
    assert 0 < deleted < 20_000
    assert_metric_deltas(before, ACTIVITY_SWEPT, "outcome", {"deleted": deleted, "error": 1})
    assert molecule_tasks.sweep_activity() == {"deleted": 20_000 - deleted}
    assert_metric_deltas(before, ACTIVITY_SWEPT, "outcome", {"deleted": 20_000, "error": 1})


@pytest.mark.django_db(transaction=True)
@override_settings(PHANTOM_BUSY_STALE_AFTER=timedelta(0))
def test_phantom_busy_sweep_killed_mid_statement_resets_nothing_and_counts_one_error(
    register: Callable[..., Any],
) -> None:
    busy = register("stuck", active_tasks=3, current_task="x").workspace
    before = metrics_saved()

    outcome = terminate_when_blocked(PHANTOM_JOB, "workspaces", None)

    assert "error" in outcome
    busy.refresh_from_db()
    assert busy.active_tasks == 3
    assert_metric_delta(before, 0, RESETS)
    assert_metric_delta(before, 1, "molecule_phantom_busy_sweep_errors_total")
    assert PHANTOM_JOB() == {"reset": 1}
    assert_metric_delta(before, 1, RESETS)
