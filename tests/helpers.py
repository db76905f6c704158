"""Helpers shared by the test modules: workspaces with tokens, SQL, child processes, metrics,
task rows."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.postgres.functions import TransactionNow
from django.db import OperationalError, connection, connections
from django.test import Client, override_settings
from django.utils import timezone
from django_prometheus import testutils
from django_q.humanhash import uuid as task_uuid
from django_q.models import Schedule, Task
from django_q.tasks import async_task
from prometheus_client.parser import text_string_to_metric_families

from devtools.processes import ServiceStack, database_url_from_settings, run_captured
from molecule.models import MetricTotal, Workspace
from pending_uploads.conf import DEFAULT_SWEEP_BATCH_BYTES, DEFAULT_SWEEP_BATCH_SIZE
from pending_uploads.managers import NewUpload, SweepResult
from pending_uploads.models import PendingUpload
from scheduler.schedules import SCHEDULES
from scheduler.services import schedules_sync

MANAGE_PY = Path(settings.BASE_DIR) / "manage.py"
# A port nothing listens on: connecting is refused at once.
UNREACHABLE_DATABASE_URL = "postgres://postgres@127.0.0.1:1/unreachable"


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2 at 1,000 rounds; a hash names its rounds, so any PBKDF2 verifies it."""

    iterations = 1_000


@dataclass
class RegisteredWorkspace:
    workspace: Workspace
    token: str
    # What the platform presents to the workspace when it forwards (push mode).
    inbound_secret: str = field(default="", repr=False)

    @property
    def id(self) -> uuid.UUID:
        return self.workspace.id

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}

    def url(self, suffix: str) -> str:
        return f"/workspaces/{self.id}/{suffix}"


def make_upload(
    state: str = "pending",
    *,
    filename: str = "notes.txt",
    mimetype: str = "text/plain",
    content: bytes = b"hello",
    workspace_id: uuid.UUID | None = None,
) -> PendingUpload:
    """Store one file as the API would (in the bucket when one is set), then move its row into
    ``state`` with .update()."""
    row = PendingUpload.objects.put(
        workspace_id or uuid.uuid4(),
        NewUpload(filename, mimetype, len(content), io.BytesIO(content)),
        ttl=timedelta(hours=24),
        max_bytes=len(content),
    )
    now = timezone.now()
    stamps: dict[str, dict[str, Any]] = {
        "pending": {},
        "fetched": {"fetched_at": now},
        "acked": {"fetched_at": now, "acked_at": now},
        "expired": {"expires_at": now - timedelta(minutes=1)},
    }
    # The table's own defaults (the transaction's time), as a plain INSERT would have them.
    defaults = {
        "created_at": TransactionNow(),
        "expires_at": TransactionNow() + timedelta(hours=24),
    }
    PendingUpload.objects.filter(pk=row.pk).update(**(defaults | stamps[state]))
    row.refresh_from_db()
    return row


def body_of(response: Any) -> bytes:
    """The whole body of a test-client response, streamed (downloads) or not."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def assert_json_error(response: Any, status: int | tuple[int, ...]) -> dict:
    """The response has one of ``status`` and a JSON body with a non-empty "error"."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str)
    assert body["error"]
    return body


def run_sql(sql: str, params: Any = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@contextlib.contextmanager
def table_locked_elsewhere(
    table: str = "pending_uploads", mode: str = "ACCESS EXCLUSIVE"
) -> Iterator[None]:
    """Hold a lock on ``table`` from a second, independent connection."""
    # The URL carries the socket directory too, for the embedded server.
    other = psycopg.connect(current_database_url())
    try:
        other.execute(f"LOCK TABLE {table} IN {mode} MODE")
        yield
    finally:
        other.rollback()
        other.close()


@contextlib.contextmanager
def sql_installed(setup: Sequence[str], teardown: Sequence[str]) -> Iterator[None]:
    """Run ``setup`` for the block and ``teardown`` after it; ``teardown`` first as well, in
    case an interrupted run left its objects in a reused database."""
    for statement in (*teardown, *setup):
        run_sql(statement)
    try:
        yield
    finally:
        for statement in teardown:
            run_sql(statement)


@contextlib.contextmanager
def lock_timeout(value: str) -> Iterator[None]:
    """This connection's lock_timeout, for the block (outside a transaction too)."""
    run_sql("SELECT set_config('lock_timeout', %s, false)", [value])
    try:
        yield
    finally:
        run_sql("RESET lock_timeout")


def run_together(job: Callable[[], Any], count: int) -> list[Any]:
    """Run ``job`` in ``count`` threads released at once; their results, or the first error."""
    barrier = threading.Barrier(count)
    lock = threading.Lock()
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            result = job()
            with lock:
                results.append(result)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            # Each thread has its own connection; close it so teardown's flush is not blocked.
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def current_database_url() -> str:
    """The URL of the test database this process uses, for a child process."""
    return database_url_from_settings(connection.settings_dict)


def _child_env(database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # Always set: the settings refuse to start without it.
    env["DATABASE_URL"] = database_url or current_database_url()
    env["DJANGO_SETTINGS_MODULE"] = "molecule.settings"
    return env


def run_manage(
    *args: str, database_url: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run manage.py in a child; ``env`` replaces the environment it would otherwise get."""
    return run_captured(
        # Relative, so usage errors name "manage.py" as an operator would type it.
        [sys.executable, MANAGE_PY.name, *args],
        env=env if env is not None else _child_env(database_url),
        timeout=60,
    )


def run_module(
    module: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` from the checkout, its output captured as text."""
    return run_captured([sys.executable, "-m", module, *args], env=env, timeout=timeout)


def service_stack(workdir: Path, **options: Any) -> ServiceStack:
    """A ServiceStack on the test database (unless ``database_url``), logs under ``workdir``."""
    options.setdefault("database_url", current_database_url())
    return ServiceStack(metrics_dir=workdir / "metrics", log_dir=workdir / "logs", **options)


def assert_uncounted_error_logged(
    count_error: Callable[[], None],
    logged: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``count_error`` with the counter's table away logs ``logged``, the reason's first line."""

    def broken_add(*args: object, **kwargs: object) -> None:
        raise OperationalError("database went away\nsecond line")

    monkeypatch.setattr(MetricTotal.objects, "add", broken_add)

    count_error()

    assert f"{logged}: database went away" in caplog.text
    assert "second line" not in caplog.text


def empty_totals_exposition() -> str:
    """The /metrics text when metric_totals is empty, as before anything was ever swept."""
    from molecule.exposition import metrics_page
    from molecule.models import MetricTotal

    MetricTotal.objects.all().delete()
    return metrics_page()[0].decode()


def scrape(client: Client) -> str:
    with override_settings(METRICS_TOKEN=""):
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


class Exposition:
    """A scraped /metrics text as a registry, so the testutils below read it like a live one."""

    def __init__(self, text: str) -> None:
        self.families = list(text_string_to_metric_families(text))

    def collect(self) -> list:
        return self.families


def _registry(exposition: str | None) -> Any:
    """The registry /metrics serves (stored totals read on this connection), or a scraped text."""
    from molecule.exposition import metrics_registry

    return metrics_registry() if exposition is None else Exposition(exposition)


def metrics_saved(exposition: str | None = None) -> list:
    """Every /metrics sample now, frozen, to compare with later by assert_metric_delta."""
    return testutils.save_registry(registry=_registry(exposition))


def assert_metric_delta(
    saved: list, diff: float, name: str, *, exposition: str | None = None, **labels: str
) -> None:
    """``name{labels}`` rose by exactly ``diff`` since ``saved`` (0 when it was missing then)."""
    testutils.assert_metric_diff(saved, diff, name, registry=_registry(exposition), **labels)


def assert_metric_deltas(
    saved: list, name: str, label: str, diffs: dict[str, float], *, exposition: str | None = None
) -> None:
    """Each ``name{label=value}`` rose by exactly its diff in ``diffs`` since ``saved``."""
    for value, diff in diffs.items():
        assert_metric_delta(saved, diff, name, exposition=exposition, **{label: value})


def metric_series(name: str, *, exposition: str | None = None) -> dict[tuple, float]:
    """Every sample called ``name`` by its sorted label pairs: which series exist, and values."""
    vector = testutils.get_metrics_vector(name, registry=_registry(exposition))
    series = {tuple(sorted(labels.items())): value for labels, value in vector}
    assert len(series) == len(vector), f"{name} repeats a series: {vector}"
    return series


def metric_value(name: str, *, exposition: str | None = None, **labels: str) -> float | None:
    """``name{labels}`` as /metrics shows it now, or None when the series is missing."""
    return testutils.get_metric(name, registry=_registry(exposition), **labels)


def bucket_create() -> str:
    """A new, empty bucket on the test S3 server; its name."""
    from pending_uploads.storage.s3 import client

    name = f"molecule-test-{uuid.uuid4().hex[:16]}"
    client().create_bucket(Bucket=name)
    return name


def bucket_objects(bucket: str) -> dict[str, int]:
    """Every object in ``bucket``: its size by key."""
    from pending_uploads.storage.s3 import client

    pages = client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def bucket_mismatch() -> tuple[set[str], set[str]]:
    """In the test's bucket (if any): objects no row names, and rows' keys with no object.

    Both empty: every object has its row, and every bucket row its object.
    """
    bucket = getattr(settings, "PENDING_UPLOADS_S3_BUCKET", "")
    objects = set(bucket_objects(bucket)) if bucket else set()
    keys = {key for (key,) in run_sql("SELECT storage_key FROM pending_uploads") if key}
    return objects - keys, keys - objects


def bucket_remove(bucket: str) -> None:
    """Delete ``bucket`` and what it holds (a real server keeps them; moto would not care)."""
    from pending_uploads.storage.s3 import client

    s3 = client()
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    keys = list(bucket_objects(bucket))
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk]})
    s3.delete_bucket(Bucket=bucket)


@contextlib.contextmanager
def s3_unreachable() -> Iterator[None]:
    """boto3 pointed at a port nothing listens on: every call is refused, after its retries."""
    from pending_uploads.storage import s3

    with (
        mock.patch.dict(os.environ, {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"}),
        mock.patch.object(s3, "_clients", {}),
    ):
        yield


def upload_sweep(retention: timedelta, **options: Any) -> SweepResult:
    """The manager's sweep, with the service's default batch limits unless ``options`` set them."""
    options.setdefault("batch_size", DEFAULT_SWEEP_BATCH_SIZE)
    options.setdefault("batch_bytes", DEFAULT_SWEEP_BATCH_BYTES)
    return PendingUpload.objects.sweep(retention, **options)


# What a failed sweep leaves: the service's one-line error, as long as PostgreSQL writes it.
SWEEP_ERROR = (
    "pending_uploads sweep failed: connection failed: connection to server at "
    '"db-primary.internal.example.com" (10.20.30.40), port 5432 failed: FATAL: remaining '
    "connection slots are reserved for roles with the SUPERUSER attribute"
)


def django_q_task_rows() -> None:
    """Realistic rows for every task page: long names, dotted paths, arguments and results."""
    schedules_sync()
    now = timezone.now()
    # An operator's one-off schedule, with arguments.
    Schedule.objects.create(
        name="pending_uploads.sweep (operator, after the 2026-12-02 incident, zero retention)",
        func="pending_uploads.tasks.sweep_pending_uploads",
        kwargs="ack_retention=datetime.timedelta(0), dry_run=False",
        schedule_type=Schedule.ONCE,
        next_run=now + timedelta(hours=3),
    )
    for n in range(30):
        spec = SCHEDULES[n % len(SCHEDULES)]
        name, task_id = task_uuid()
        failed = n % 5 == 4
        started = now - timedelta(minutes=5 * n, seconds=n)
        Task.objects.create(
            id=task_id,
            name=name,
            func=spec.func,
            args=("molecule-uploads-production-eu-west-1", 2500) if n % 3 else None,
            kwargs={"ack_retention": "1 h", "requested_by": "operator@example.com"},
            result=(
                f"Traceback (most recent call last):\n  ...\nOperationalError: {SWEEP_ERROR}"
                if failed
                else {"acked": 12_345 + n, "expired": 678, "error": SWEEP_ERROR if n == 7 else None}
            ),
            group=spec.name,
            cluster="molecule-uploads-production-eu-west-1-worker-07",
            started=started,
            stopped=started + timedelta(seconds=3, milliseconds=n),
            success=not failed,
            attempt_count=1,
        )
    last = Task.objects.filter(success=True).latest("started")
    Schedule.objects.filter(func=last.func).update(task=last.id)
    for spec in SCHEDULES:
        async_task(spec.func, "molecule-uploads-production-eu-west-1", group=spec.name)
