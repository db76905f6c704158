"""The pending-uploads services: receiving uploads, the sweep with its metrics, and the job."""

from __future__ import annotations

import io
import logging
import re
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, OperationalError
from django.test import override_settings

from molecule.models import ActivityLog, MetricTotal
from pending_uploads import metrics, tasks
from pending_uploads.managers import (
    CHUNK_BYTES,
    FileTooLarge,
    NewUpload,
    PendingUploadManager,
    SweepError,
    SweepResult,
)
from pending_uploads.models import PendingUpload
from pending_uploads.services import (
    EmptyFile,
    NoFiles,
    TooManyFiles,
    uploads_count_error,
    uploads_receive,
    uploads_record_run,
    uploads_sweep,
)
from tests.helpers import (
    assert_metric_delta,
    assert_metric_deltas,
    assert_uncounted_error_logged,
    metric_value,
    metrics_saved,
    run_sql,
)

RETENTION = timedelta(hours=1)
SERVICE_LOGGER = "pending_uploads.services.sweep"
TASK_LOGGER = "pending_uploads.tasks"
SWEPT = "molecule_pending_uploads_swept_total"
DURATIONS = "molecule_pending_uploads_sweep_duration_seconds_count"
LAST_SWEEP = "molecule_pending_uploads_last_sweep_timestamp_seconds"
OLDEST = "molecule_pending_uploads_oldest_unacked_age_seconds"


def set_gauges(value: float, *, last_sweep: float | None = None) -> None:
    values = {(metrics.backlog_rows.name, state): value for state in metrics.BACKLOG_STATES}
    values[(metrics.oldest_unacked_age.name, "")] = value
    if last_sweep is not None:
        values[(metrics.last_sweep_timestamp.name, "")] = last_sweep
    MetricTotal.objects.gauges_set(values)


def put_row(workspace_id: uuid.UUID, name: str = "f.txt") -> PendingUpload:
    data = b"payload"
    upload = NewUpload(name, "text/plain", len(data), io.BytesIO(data))
    return PendingUpload.objects.put(workspace_id, upload, ttl=timedelta(hours=24), max_bytes=1024)


def backdate(row: PendingUpload, **ages: timedelta) -> None:
    """Set each named timestamp to the database's now() minus the given age."""
    PendingUpload.objects.filter(pk=row.pk).update(
        **{field: TransactionNow() - age for field, age in ages.items()}
    )


@pytest.fixture
def table(db) -> dict[str, list[uuid.UUID]]:
    """Rows in every state; with one hour's retention, 2 acked and 1 expired are eligible."""
    workspace_id = uuid.uuid4()
    rows: dict[str, list[uuid.UUID]] = {}

    def add(kind: str, **ages: timedelta) -> None:
        row = put_row(workspace_id, f"{kind}.txt")
        if ages:
            backdate(row, **ages)
        rows.setdefault(kind, []).append(row.file_id)

    add("acked_old", acked_at=timedelta(hours=2))
    add("acked_old", acked_at=timedelta(days=3))
    add("expired", expires_at=timedelta(minutes=1))
    add("acked_recent", acked_at=timedelta(minutes=1))
    add("pending", created_at=timedelta(hours=1))
    add("pending")
    add("fetched", fetched_at=timedelta(minutes=5))
    return rows


def remaining() -> set[uuid.UUID]:
    return set(PendingUpload.objects.values_list("file_id", flat=True))


def kept_ids(table: dict[str, list[uuid.UUID]]) -> set[uuid.UUID]:
    return {file_id for kind in ("acked_recent", "pending", "fetched") for file_id in table[kind]}


# --- uploads_sweep -------------------------------------------------------------------------


def test_sweep_counts_each_outcome_as_the_rows_deleted(table, caplog) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE_LOGGER)
    before = metrics_saved()

    report = uploads_sweep(ack_retention=RETENTION)

    assert report.result == SweepResult(acked=2, expired=1)
    assert not report.dry_run
    assert remaining() == kept_ids(table)
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 2, "expired": 1, "error": 0})


def test_sweep_uses_the_configured_retention_by_default(table) -> None:
    # One day keeps the row acked 2 h ago; only the one acked 3 days ago goes.
    with override_settings(PENDING_UPLOADS_ACK_RETENTION=timedelta(days=1)):
        report = uploads_sweep()
    assert report.result == SweepResult(acked=1, expired=1)
    assert table["acked_old"][0] in remaining()


def test_sweep_logs_one_info_line_with_both_counts_and_the_duration(table, caplog) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE_LOGGER)

    uploads_sweep(ack_retention=RETENTION)

    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name == SERVICE_LOGGER and record.levelno == logging.INFO
    ]
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"pending uploads sweep: 2 acked, 1 expired in \d+\.\d ms \(retention 1 h\)", lines[0]
    ), lines[0]


def test_second_sweep_finds_nothing_and_counts_nothing(table) -> None:
    uploads_sweep(ack_retention=RETENTION)
    before = metrics_saved()

    report = uploads_sweep(ack_retention=RETENTION)

    assert report.result == SweepResult(0, 0)
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 0, "expired": 0, "error": 0})


def test_dry_run_changes_no_row_and_no_metric(table, caplog) -> None:
    caplog.set_level(logging.INFO, logger=SERVICE_LOGGER)
    rows_before = remaining()
    before = metrics_saved()

    report = uploads_sweep(ack_retention=RETENTION, dry_run=True)

    assert report.dry_run
    assert report.result == SweepResult(acked=2, expired=1)
    assert report.gauges_ms is None
    assert remaining() == rows_before
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 0, "expired": 0, "error": 0})
    assert_metric_delta(before, 0, DURATIONS)
    assert_metric_delta(before, 0, LAST_SWEEP)
    assert "(dry run): 2 acked, 1 expired" in caplog.text


def test_sweep_refreshes_the_backlog_gauges(table) -> None:
    # Sentinels, so a gauge the sweep did not set would show.
    set_gauges(-1, last_sweep=0)
    before = metrics_saved()
    started = time.time()

    report = uploads_sweep(ack_retention=RETENTION)

    assert report.gauges_ms is not None
    for state, expected in {"pending": 2, "fetched": 1, "acked": 1}.items():
        assert metric_value("molecule_pending_uploads_rows", state=state) == expected, state
    # The oldest unacked row was created exactly one hour before the database's now().
    assert metric_value(OLDEST) == pytest.approx(3600)
    # The database's clock, as every eligibility decision (now() of this test's transaction).
    database_now = float(run_sql("SELECT EXTRACT(EPOCH FROM now())")[0][0])
    assert metric_value(LAST_SWEEP) == pytest.approx(database_now)
    assert database_now <= started + 1
    assert_metric_delta(before, 1, DURATIONS)


def test_gauges_of_an_empty_table_are_zero(db) -> None:
    set_gauges(-1)

    assert uploads_record_run(0.01) is not None

    for state in metrics.BACKLOG_STATES:
        assert metric_value("molecule_pending_uploads_rows", state=state) == 0
    assert metric_value(OLDEST) == 0


def test_failed_gauge_refresh_is_logged_and_does_not_fail_the_sweep(
    table, monkeypatch, caplog
) -> None:
    def broken_backlog(self: PendingUploadManager) -> None:
        raise OperationalError("backlog query failed")

    monkeypatch.setattr(PendingUploadManager, "backlog", broken_backlog)
    set_gauges(-1)
    before = metrics_saved()

    report = uploads_sweep(ack_retention=RETENTION)

    assert report.result == SweepResult(acked=2, expired=1)
    assert report.gauges_ms is None
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 2, "expired": 1, "error": 0})
    assert metric_value("molecule_pending_uploads_rows", state="pending") == -1
    failures = [r for r in caplog.records if "sweep's gauges" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None


@pytest.mark.parametrize("error", [RuntimeError("boom"), SweepError("boom")])
def test_failing_sweep_counts_an_error_and_raises_sweep_error(
    table, monkeypatch, caplog, error: Exception
) -> None:
    def broken_sweep(self: PendingUploadManager, *args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(PendingUploadManager, "sweep", broken_sweep)
    before = metrics_saved()

    with pytest.raises(SweepError, match="boom") as caught:
        uploads_sweep(ack_retention=RETENTION)

    assert caught.value.partial == SweepResult(0, 0)
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 0, "expired": 0, "error": 1})
    assert "pending uploads sweep failed after 0 acked, 0 expired deleted" in caplog.text


@override_settings(PENDING_UPLOADS_SWEEP_BATCH_SIZE=1)
def test_failing_sweep_keeps_what_committed_batches_counted(table) -> None:
    def fail_after_first_batch(done: SweepResult, batches: int) -> None:
        raise OperationalError("connection lost")

    before = metrics_saved()
    rows_before = len(remaining())

    with pytest.raises(SweepError) as caught:
        uploads_sweep(ack_retention=RETENTION, on_batch=fail_after_first_batch)

    # The first batch (one row per arm) committed its rows and its counts in one statement.
    assert caught.value.partial == SweepResult(acked=1, expired=1)
    assert rows_before - len(remaining()) == 2
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 1, "expired": 1, "error": 1})


def test_error_count_that_cannot_be_stored_is_logged_in_one_line(db, monkeypatch, caplog) -> None:
    logged = "could not count the failed pending-uploads sweep"
    assert_uncounted_error_logged(uploads_count_error, logged, monkeypatch, caplog)


def test_failing_dry_run_counts_nothing(db, monkeypatch) -> None:
    def broken_sweep(self: PendingUploadManager, *args: object, **kwargs: object) -> None:
        raise SweepError("dry run failed", partial=SweepResult(1, 1))

    monkeypatch.setattr(PendingUploadManager, "sweep", broken_sweep)
    before = metrics_saved()

    with pytest.raises(SweepError):
        uploads_sweep(ack_retention=RETENTION, dry_run=True)

    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 0, "expired": 0, "error": 0})


# --- the scheduled job ---------------------------------------------------------------------
# transactional_db: after a failure the job drops unusable connections, which would also drop
# the connection holding a test transaction.


@pytest.fixture
def committed_table(transactional_db) -> dict[str, list[uuid.UUID]]:
    workspace_id = uuid.uuid4()
    old = put_row(workspace_id, "old.txt")
    backdate(old, acked_at=timedelta(hours=2))
    gone = put_row(workspace_id, "gone.txt")
    backdate(gone, expires_at=timedelta(minutes=1))
    live = put_row(workspace_id, "live.txt")
    return {"acked_old": [old.file_id], "expired": [gone.file_id], "live": [live.file_id]}


@override_settings(PENDING_UPLOADS_ACK_RETENTION=RETENTION)
def test_job_sweeps_and_reports_counts(committed_table) -> None:
    before = metrics_saved()

    assert tasks.sweep_pending_uploads() == {"acked": 1, "expired": 1}

    assert remaining() == set(committed_table["live"])
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 1, "expired": 1, "error": 0})


@override_settings(PENDING_UPLOADS_ACK_RETENTION=RETENTION)
def test_raising_sweep_does_not_escape_the_job_and_the_next_run_counts(
    committed_table, monkeypatch, caplog
) -> None:
    def broken_sweep(self: PendingUploadManager, *args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(PendingUploadManager, "sweep", broken_sweep)
    before = metrics_saved()

    outcome = tasks.sweep_pending_uploads()

    assert "database went away" in outcome["error"]
    assert_metric_delta(before, 1, SWEPT, outcome="error")
    assert remaining() == {file_id for ids in committed_table.values() for file_id in ids}
    logged = [r for r in caplog.records if r.name == TASK_LOGGER and r.exc_info]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert "Traceback" in caplog.text
    assert "RuntimeError: database went away" in caplog.text

    monkeypatch.undo()
    assert tasks.sweep_pending_uploads() == {"acked": 1, "expired": 1}
    assert_metric_deltas(before, SWEPT, "outcome", {"acked": 1, "expired": 1, "error": 1})
    assert remaining() == set(committed_table["live"])


# --- uploads_receive -----------------------------------------------------------------------


def stored_for(workspace_id: uuid.UUID) -> tuple[int, int]:
    return (
        PendingUpload.objects.filter(workspace_id=workspace_id).count(),
        ActivityLog.objects.filter(workspace_id=workspace_id).count(),
    )


def upload_file(name: str = "a.txt", data: bytes = b"hello") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/plain")


@pytest.mark.parametrize(
    ("mode", "files", "error", "message"),
    [
        ("poll", [], NoFiles, "no files part in the request"),
        (
            "poll",
            [upload_file(f"{i}.txt") for i in range(3)],
            TooManyFiles,
            "at most 2 files per request",
        ),
        ("poll", [upload_file("full.txt"), upload_file("e.txt", b"")], EmptyFile, "empty files"),
        (
            "poll",
            [upload_file("ok.txt"), upload_file("big.txt", b"x" * 9)],
            FileTooLarge,
            "over the 8-byte cap",
        ),
    ],
    ids=["no-files", "too-many", "empty", "over-cap"],
)
@override_settings(PENDING_UPLOADS_MAX_FILES=2, PENDING_UPLOADS_MAX_FILE_BYTES=8)
def test_rejected_uploads_store_nothing(
    register,
    db,
    mode: str,
    files: list[SimpleUploadedFile],
    error: type[Exception],
    message: str,
) -> None:
    workspace = register("uploader", mode).workspace

    with pytest.raises(error) as caught:
        uploads_receive(workspace=workspace, files=files)

    assert message in str(caught.value)
    assert stored_for(workspace.id) == (0, 0)


@override_settings(PENDING_UPLOADS_MAX_FILE_BYTES=8)
def test_over_cap_rejection_names_the_file_and_the_limit(register, db) -> None:
    workspace = register("uploader", "poll").workspace

    with pytest.raises(FileTooLarge) as caught:
        uploads_receive(workspace=workspace, files=[upload_file("big file.txt", b"x" * 9)])

    assert (caught.value.filename, caught.value.size, caught.value.limit) == ("big_file.txt", 9, 8)


def test_received_files_are_stored_with_their_activity_rows(register, db) -> None:
    workspace = register("uploader", "poll").workspace

    rows = uploads_receive(
        workspace=workspace, files=[upload_file("a b.txt", b"one"), upload_file("c.txt", b"22")]
    )

    assert [(row.filename, row.size_bytes) for row in rows] == [("a_b.txt", 3), ("c.txt", 2)]
    assert stored_for(workspace.id) == (2, 2)
    bodies = list(
        ActivityLog.objects.filter(workspace_id=workspace.id)
        .order_by("id")
        .values_list("request_body", flat=True)
    )
    assert bodies == [
        {
            "file_id": str(row.file_id),
            "uri": row.uri,
            "name": row.filename,
            "mimeType": "text/plain",
            "size": row.size_bytes,
        }
        for row in rows
    ]


# Instrumentation, rolled back with the test: every INSERT statement on either table, in order.
STATEMENT_LOG_SETUP = (
    "CREATE TEMP TABLE insert_statements (n serial, tbl text)",
    """
    CREATE FUNCTION pg_temp.log_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO insert_statements (tbl) VALUES (TG_TABLE_NAME);
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER log_insert AFTER INSERT ON pending_uploads "
    "FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.log_insert()",
    "CREATE TRIGGER log_insert AFTER INSERT ON activity_logs "
    "FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.log_insert()",
)


def test_every_file_is_written_before_the_activity_rows_in_one_insert(register, db) -> None:
    workspace = register("uploader", "poll").workspace
    for statement in STATEMENT_LOG_SETUP:
        run_sql(statement)
    big = SimpleUploadedFile("big.bin", b"b" * (CHUNK_BYTES + 1), "application/octet-stream")

    uploads_receive(workspace=workspace, files=[upload_file("a.txt"), big, upload_file("c.txt")])

    order = [tbl for (tbl,) in run_sql("SELECT tbl FROM insert_statements ORDER BY n")]
    assert order == ["pending_uploads"] * 3 + ["activity_logs"]
    assert stored_for(workspace.id) == (3, 3)


@pytest.mark.django_db
def test_a_database_error_other_than_the_size_check_propagates(poll_workspace) -> None:
    # The workspace vanishes under the request: its activity rows break the foreign key.
    run_sql("SET CONSTRAINTS ALL IMMEDIATE")
    run_sql("DELETE FROM workspaces WHERE id = %s", [poll_workspace.id])

    with pytest.raises(IntegrityError):
        uploads_receive(workspace=poll_workspace.workspace, files=[upload_file()])

    assert PendingUpload.objects.count() == 0
