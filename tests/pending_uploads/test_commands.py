"""manage.py sweep_uploads (output, --json, --dry-run, durations, progress, exit codes, the
objects it deletes with a bucket) and manage.py reap_upload_objects."""

from __future__ import annotations

import io
import json
import re
import sys
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from pending_uploads import storage
from pending_uploads.managers import NewUpload, PendingUploadManager, SweepError, SweepResult
from pending_uploads.models import PendingUpload
from tests.helpers import (
    assert_metric_delta,
    assert_metric_deltas,
    bucket_objects,
    metrics_saved,
    run_manage,
    s3_unreachable,
)

SUMMARY_RE = r"swept 2 acked, 1 expired in \d+ ms"


SWEPT = "molecule_pending_uploads_swept_total"


def put_row(workspace_id: uuid.UUID, **ages: timedelta) -> uuid.UUID:
    upload = NewUpload("f.txt", "text/plain", 4, io.BytesIO(b"data"))
    row = PendingUpload.objects.put(workspace_id, upload, ttl=timedelta(hours=24), max_bytes=64)
    if ages:
        PendingUpload.objects.filter(pk=row.pk).update(
            **{field: TransactionNow() - age for field, age in ages.items()}
        )
    return row.file_id


def remaining() -> set[uuid.UUID]:
    return set(PendingUpload.objects.values_list("file_id", flat=True))


def add_eligible_rows() -> set[uuid.UUID]:
    """Two acked rows past an hour's retention and one expired row, next to a live one."""
    workspace_id = uuid.uuid4()
    put_row(workspace_id, acked_at=timedelta(hours=2))
    put_row(workspace_id, acked_at=timedelta(hours=3))
    put_row(workspace_id, expires_at=timedelta(seconds=1))
    return {put_row(workspace_id)}


@pytest.fixture
def rows(db) -> set[uuid.UUID]:
    return add_eligible_rows()


def sweep_uploads(*args: str, stderr: StringIO | None = None) -> str:
    out = StringIO()
    call_command("sweep_uploads", *args, stdout=out, stderr=stderr or StringIO())
    return out.getvalue()


class FakeStderr(StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(hours=1))
def test_prints_one_summary_line_and_deletes(rows) -> None:
    before = metrics_saved()

    out = sweep_uploads()

    assert re.fullmatch(SUMMARY_RE + "\n", out), out
    assert remaining() == rows
    # The command counts in the same series as the scheduled job.
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 2, "expired": 1, "error": 0})


@override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(hours=1))
def test_json_prints_exactly_one_json_line(rows) -> None:
    out = sweep_uploads("--json")

    assert out.endswith("\n")
    assert out.count("\n") == 1
    payload = json.loads(out)
    assert set(payload) == {
        "acked",
        "expired",
        "duration_ms",
        "gauges_ms",
        "objects_deleted",
        "object_delete_errors",
        "drain_ms",
        "dry_run",
    }
    assert (payload["objects_deleted"], payload["object_delete_errors"]) == (0, 0)
    assert isinstance(payload["drain_ms"], float) and payload["drain_ms"] >= 0
    assert (payload["acked"], payload["expired"], payload["dry_run"]) == (2, 1, False)
    assert isinstance(payload["duration_ms"], float) and payload["duration_ms"] >= 0
    assert isinstance(payload["gauges_ms"], float) and payload["gauges_ms"] >= 0
    assert remaining() == rows


@override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(hours=1))
def test_dry_run_changes_nothing_and_says_would_sweep(rows) -> None:
    before_rows = remaining()
    before = metrics_saved()

    out = sweep_uploads("--dry-run")
    payload = json.loads(sweep_uploads("--dry-run", "--json"))

    assert re.fullmatch(r"would sweep 2 acked, 1 expired in \d+ ms \(dry run\)\n", out), out
    assert payload["dry_run"] is True
    assert (payload["acked"], payload["expired"], payload["gauges_ms"]) == (2, 1, None)
    assert payload["drain_ms"] is None
    assert remaining() == before_rows
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 0, "expired": 0, "error": 0})


@pytest.mark.parametrize(
    ("retention", "acked"),
    # A retention of 0 keeps no acked row.
    [("0", 6), ("90s", 5), ("30m", 4), ("1h", 3), ("7200", 2), ("2d", 1), ("1.5h", 3)],
)
def test_ack_retention_accepts_every_duration_form(db, retention: str, acked: int) -> None:
    workspace_id = uuid.uuid4()
    for age in (
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(minutes=45),
        timedelta(minutes=100),
        timedelta(hours=3),
        timedelta(days=3),
    ):
        put_row(workspace_id, acked_at=age)

    payload = json.loads(sweep_uploads("--ack-retention", retention, "--json"))

    assert (payload["acked"], payload["expired"]) == (acked, 0)
    assert PendingUpload.objects.count() == 6 - acked


def test_bad_duration_through_call_command_is_a_command_error(db) -> None:
    with pytest.raises(CommandError, match="invalid duration '2x'"):
        sweep_uploads("--ack-retention", "2x")


@override_settings(PENDING_UPLOADS_SWEEP_BATCH_SIZE=2, PENDING_UPLOADS_ACK_RETENTION=timedelta(0))
def test_progress_goes_to_a_terminal_stderr_only(db, monkeypatch) -> None:
    workspace_id = uuid.uuid4()
    for _ in range(6):
        put_row(workspace_id, expires_at=timedelta(minutes=1))
    terminal = FakeStderr(tty=True)
    monkeypatch.setattr(sys, "stderr", terminal)
    command_stderr = StringIO()

    out = sweep_uploads(stderr=command_stderr)

    assert re.fullmatch(r"swept 0 acked, 6 expired in \d+ ms\n", out), out
    progress = terminal.getvalue()
    # Batches of 2, 2 and 2, then an empty one that ends the sweep.
    assert re.search(r"\r6 rows deleted, 4 batches, [\d,]+ rows/s", progress), progress
    assert progress.endswith("\n")
    assert command_stderr.getvalue() == ""


@override_settings(PENDING_UPLOADS_SWEEP_BATCH_SIZE=2, PENDING_UPLOADS_ACK_RETENTION=timedelta(0))
@pytest.mark.parametrize(("tty", "args"), [(False, ()), (True, ("--dry-run",))])
def test_no_progress_without_a_terminal_or_on_a_dry_run(
    db, monkeypatch, tty: bool, args: tuple[str, ...]
) -> None:
    workspace_id = uuid.uuid4()
    for _ in range(6):
        put_row(workspace_id, expires_at=timedelta(minutes=1))
    stderr = FakeStderr(tty=tty)
    monkeypatch.setattr(sys, "stderr", stderr)

    out = sweep_uploads(*args)

    assert "6 expired" in out
    assert stderr.getvalue() == ""


# --- real processes: exit codes and what reaches stdout/stderr -----------------------------


@override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(hours=1))
def test_json_in_a_real_process_keeps_stdout_to_one_line(transactional_db) -> None:
    live = add_eligible_rows()

    result = run_manage("sweep_uploads", "--ack-retention", "1h", "--json")

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    payload = json.loads(result.stdout)
    assert (payload["acked"], payload["expired"], payload["dry_run"]) == (2, 1, False)
    # The service's log line goes to stderr, never into the JSON on stdout.
    assert "pending uploads sweep: 2 acked, 1 expired" in result.stderr
    assert remaining() == live


def test_partial_sweep_error_message_is_the_first_line_only(db, monkeypatch) -> None:
    # PostgreSQL's errors carry DETAIL and HINT lines after the first.
    message = "pending_uploads sweep failed: gone\nDETAIL: the row was locked\nHINT: retry"

    def half_done(self: PendingUploadManager, *args: object, **kwargs: object) -> None:
        raise SweepError(message, partial=SweepResult(1, 0))

    monkeypatch.setattr(PendingUploadManager, "sweep", half_done)
    before = metrics_saved()

    with pytest.raises(CommandError) as caught:
        sweep_uploads("--json")

    assert str(caught.value) == "pending_uploads sweep failed: gone"

    assert_metric_delta(before, 1, SWEPT, outcome="error")


# --- with a bucket: the sweep's objects, and reap_upload_objects -------------------------------


@override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(hours=1))
def test_in_bucket_mode_the_summary_counts_the_deleted_objects(s3_bucket, rows) -> None:
    dry = sweep_uploads("--dry-run")
    objects_before = len(bucket_objects(s3_bucket))

    out = sweep_uploads()

    assert re.fullmatch(r"would sweep 2 acked, 1 expired in \d+ ms \(dry run\)\n", dry), dry
    assert objects_before == 4
    assert re.fullmatch(SUMMARY_RE + r"; 3 objects deleted, 0 failed\n", out), out
    assert remaining() == rows
    assert len(bucket_objects(s3_bucket)) == 1


def crashed_upload(content: bytes) -> str:
    """An object whose upload died between its PUT and its commit: no row names it."""
    row = PendingUpload(
        file_id=uuid.uuid4(), workspace_id=uuid.uuid4(), size_bytes=len(content), filename="x"
    )
    storage.bucket().save(row, io.BytesIO(content))
    return row.storage_key


def reap(*args: str) -> str:
    out = StringIO()
    call_command("reap_upload_objects", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


REAP_RE = (
    r"(?P<orphans>\d+) orphaned of (?P<listed>\d+) objects, (?P<bytes>\d+) bytes, "
    r"oldest (?P<oldest>\S+); (?P<reapable>\d+) past the grace"
)


def test_reaper_reports_orphans_and_deletes_only_those_past_the_grace(s3_bucket, db) -> None:
    kept = put_row(uuid.uuid4())
    orphan = crashed_upload(b"crashed")

    report = reap()
    # An upload in flight is younger than the grace: --delete leaves it alone.
    young = json.loads(reap("--delete", "--json"))
    reaped = reap("--grace", "0s", "--delete")

    match = re.fullmatch(REAP_RE + r"\n", report)
    assert match, report
    assert match.group("orphans", "listed", "bytes", "reapable") == ("1", "2", "7", "0")
    assert young == {
        "listed": 2,
        "orphans": 1,
        "orphan_bytes": 7,
        "oldest": match.group("oldest"),
        "reapable": 0,
        "deleted": 0,
        "failed": 0,
        "delete": True,
    }
    assert re.fullmatch(REAP_RE + r", 1 deleted, 0 failed\n", reaped), reaped
    assert list(bucket_objects(s3_bucket)) == [PendingUpload.objects.get(pk=kept).storage_key]
    assert orphan not in bucket_objects(s3_bucket)
    assert re.fullmatch(r"0 orphaned of 1 objects, 0 bytes, oldest -; 0 past the grace\n", reap())


@pytest.mark.parametrize(
    ("bucket", "message"),
    [
        ("", "PENDING_UPLOADS_S3_BUCKET is unset: there is no bucket to reap"),
        ("unreachable", "reaping the bucket's objects failed: Could not connect to the endpoint"),
    ],
)
def test_reaper_failures_are_one_line_command_errors(s3_server, db, bucket, message) -> None:
    with (
        override_settings(PENDING_UPLOADS_S3_BUCKET=bucket),
        s3_unreachable(),
        pytest.raises(CommandError) as caught,
    ):
        reap()

    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
