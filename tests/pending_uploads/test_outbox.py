"""The outbox of swept rows' objects: written by the sweep's statement, drained by every sweep,
idempotent under concurrent sweepers, partial DeleteObjects failures and kill -9."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.postgres.functions import TransactionNow
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from devtools.processes import run_captured
from pending_uploads import storage
from pending_uploads.managers import DrainResult, SweepResult
from pending_uploads.models import ObjectDeletion, PendingUpload
from pending_uploads.services import uploads_sweep
from pending_uploads.storage import Deleted
from pending_uploads.storage import s3 as s3_backend
from tests.helpers import (
    _child_env,
    assert_metric_delta,
    bucket_mismatch,
    bucket_objects,
    make_upload,
    metric_value,
    metrics_saved,
    run_sql,
    run_together,
    s3_unreachable,
)

DELETED = "molecule_pending_uploads_objects_deleted_total"
DELETE_ERRORS = "molecule_pending_uploads_object_delete_errors_total"
PENDING = "molecule_pending_uploads_object_deletions_pending"


def stored(count: int, state: str = "acked") -> list[str]:
    """``count`` files in the bucket, their rows in ``state`` (acked two hours ago); their keys."""
    keys = [make_upload(state, content=b"%d" % n).storage_key for n in range(count)]
    if state == "acked":
        PendingUpload.objects.filter(storage_key__in=keys).update(
            acked_at=TransactionNow() - timedelta(hours=2)
        )
    return keys


def queued() -> set[str]:
    return {key for keys in ObjectDeletion.objects.values_list("keys", flat=True) for key in keys}


def sweep_now() -> SweepResult:
    return uploads_sweep(ack_retention=timedelta(0)).result


@pytest.mark.django_db
def test_a_sweep_deletes_the_rows_objects_and_counts_them(s3_bucket):
    gone = stored(3, "acked") + stored(2, "expired")
    kept = stored(2, "pending")
    before = metrics_saved()

    report = uploads_sweep(ack_retention=timedelta(0))

    assert report.result == SweepResult(3, 2)
    assert report.objects == DrainResult(5, 0)
    assert report.drain_ms is not None and report.drain_ms >= 0
    assert set(bucket_objects(s3_bucket)) == set(kept)
    assert queued() == set()
    assert bucket_mismatch() == (set(), set())
    assert_metric_delta(before, 5, DELETED)
    assert_metric_delta(before, 0, DELETE_ERRORS)
    assert metric_value(PENDING) == 0
    assert not set(gone) & set(bucket_objects(s3_bucket))


@pytest.mark.django_db
def test_the_sweep_statement_queues_the_keys_of_exactly_the_rows_it_deletes(s3_bucket):
    keys = stored(4, "acked")
    with override_settings(PENDING_UPLOADS_S3_BUCKET=""):
        inline = make_upload("acked", content=b"inline")
    PendingUpload.objects.filter(pk=inline.pk).update(
        acked_at=TransactionNow() - timedelta(hours=2)
    )
    PendingUpload.objects.filter(storage_key=keys[0]).update(acked_at=TransactionNow())

    with s3_unreachable():
        report = uploads_sweep(ack_retention=timedelta(minutes=5))

    # The bucket was away: the rows went, their keys wait in the outbox, their objects remain;
    # the row with its bytes inline queues nothing.
    assert report.result == SweepResult(4, 0)
    assert report.objects == DrainResult(0, 0)
    assert queued() == set(keys[1:])
    assert set(bucket_objects(s3_bucket)) == set(keys)
    assert not PendingUpload.objects.filter(pk=inline.pk).exists()
    assert metric_value(PENDING) == 3

    # The next sweep, with the bucket back, drains them before it sweeps.
    assert uploads_sweep(ack_retention=timedelta(minutes=5)).objects == DrainResult(3, 0)
    assert queued() == set()
    assert set(bucket_objects(s3_bucket)) == {keys[0]}
    assert metric_value(PENDING) == 0


@pytest.mark.django_db
def test_each_batch_queues_one_entry_and_a_batch_without_keys_none(s3_bucket):
    keys = stored(5, "acked")
    with override_settings(PENDING_UPLOADS_S3_BUCKET=""):
        inline = make_upload("expired", content=b"inline")

    result = PendingUpload.objects.sweep(timedelta(0), batch_size=2, batch_bytes=1 << 20)

    # Acked arm: batches of 2, 2 and 1 keys; the expired arm's only row has its bytes inline
    # (its batch, the first, queues the acked arm's keys and nothing for it).
    assert result == SweepResult(5, 1)
    assert not PendingUpload.objects.filter(pk=inline.pk).exists()
    entries = list(ObjectDeletion.objects.order_by("id").values_list("keys", flat=True))
    assert [len(entry) for entry in entries] == [2, 2, 1]
    assert queued() == set(keys)
    assert PendingUpload.objects.backlog().objects_pending == 5


@pytest.mark.django_db
def test_keys_deleteobjects_refuses_stay_queued_counted_and_logged(s3_bucket, monkeypatch, caplog):
    keys = stored(4, "acked")
    real_delete = storage.bucket().delete
    refused = set(keys[:2])

    def partly(self, batch: list[str]) -> Deleted:
        deleted = real_delete([key for key in batch if key not in refused])
        failed = {key: "AccessDenied: Access Denied" for key in batch if key in refused}
        return Deleted(deleted.keys, failed)

    monkeypatch.setattr(s3_backend.S3Storage, "delete", partly)
    before = metrics_saved()

    report = uploads_sweep(ack_retention=timedelta(0))

    assert report.result == SweepResult(4, 0)
    assert report.objects == DrainResult(2, 2)
    assert queued() == refused
    # The entry keeps only the refused keys.
    assert sorted(ObjectDeletion.objects.get().keys) == sorted(refused)
    assert set(bucket_objects(s3_bucket)) == refused
    assert_metric_delta(before, 2, DELETED)
    assert_metric_delta(before, 2, DELETE_ERRORS)
    assert metric_value(PENDING) == 2
    # The drain sends keys in queue order; the first refused one is the first still queued.
    first_refused = ObjectDeletion.objects.get().keys[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"DeleteObjects refused 2 of 4 keys, which stay queued; first {first_refused}: "
        "AccessDenied: Access Denied"
    ]

    monkeypatch.undo()
    assert uploads_sweep(ack_retention=timedelta(0)).objects == DrainResult(2, 0)
    assert (queued(), bucket_objects(s3_bucket)) == (set(), {})


@pytest.mark.django_db
def test_the_drain_claims_in_batches_and_visits_each_key_once(s3_bucket):
    keys = stored(7, "acked")
    sweep_result = PendingUpload.objects.sweep(timedelta(0), batch_size=100, batch_bytes=1 << 20)
    assert sweep_result == SweepResult(7, 0)
    calls: list[list[str]] = []

    def refuse_all(batch: list[str]) -> Deleted:
        calls.append(batch)
        return Deleted([], dict.fromkeys(batch, "SlowDown"))

    # One batch, one entry: its keys go out three at a time, and all of them stay queued.
    assert PendingUpload.objects.outbox_drain(refuse_all, batch_size=3) == DrainResult(0, 7)
    queue_order = ObjectDeletion.objects.get().keys
    assert calls == [queue_order[0:3], queue_order[3:6], queue_order[6:]]
    assert sorted(queue_order) == sorted(keys)


@pytest.mark.django_db(transaction=True)
@override_settings(PENDING_UPLOADS_SWEEP_BATCH_SIZE=7)
def test_concurrent_sweepers_delete_every_object_once(s3_bucket):
    gone = stored(60, "acked") + stored(40, "expired")
    kept = stored(10, "pending")
    before = metrics_saved()

    results = run_together(lambda: uploads_sweep(ack_retention=timedelta(0)), 3)

    assert sum((r.result for r in results), SweepResult(0, 0)) == SweepResult(60, 40)
    assert sum((r.objects for r in results), DrainResult(0, 0)) == DrainResult(len(gone), 0)
    assert set(bucket_objects(s3_bucket)) == set(kept)
    assert queued() == set()
    assert_metric_delta(before, len(gone), DELETED)


# A sweep in a child process that SIGKILLs itself when the drain is about to delete the objects
# (its batches committed), or right after DeleteObjects (the outbox removal not committed).
KILLED_SWEEP = """
import os, signal, sys
import django
django.setup()
from pending_uploads.services import uploads_sweep
from pending_uploads.storage.s3 import S3Storage
real_delete = S3Storage.delete
def delete(self, keys):
    if sys.argv[1] == "after-delete":
        real_delete(self, keys)
    os.kill(os.getpid(), signal.SIGKILL)
S3Storage.delete = delete
uploads_sweep()
"""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", ["before-delete", "after-delete"])
def test_kill_9_between_commit_and_object_delete_leaves_no_orphan(s3_bucket, point):
    gone = stored(5, "acked")
    kept = stored(2, "pending")
    env = _child_env(None) | {"PENDING_UPLOADS_S3_BUCKET": s3_bucket}

    child = run_captured([sys.executable, "-c", KILLED_SWEEP, point], env=env, timeout=60)

    assert child.returncode == -signal.SIGKILL, child.stderr
    # Committed: the rows are gone and their keys are queued, whatever the objects' fate.
    assert set(PendingUpload.objects.values_list("storage_key", flat=True)) == set(kept)
    assert queued() == set(gone)
    expected = set(kept) if point == "after-delete" else set(gone + kept)
    assert set(bucket_objects(s3_bucket)) == expected

    report = uploads_sweep()

    assert report.result == SweepResult(0, 0)
    assert report.objects == DrainResult(5, 0)
    assert queued() == set()
    assert bucket_mismatch() == (set(), set())


@pytest.mark.django_db
def test_orphans_are_objects_no_row_and_no_outbox_entry_names(s3_bucket):
    [named] = stored(1, "pending")
    [queued_key] = stored(1, "acked")
    with s3_unreachable():
        sweep_now()
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    objects = [
        (named, now - 2 * hour),
        (queued_key, now - 2 * hour),
        ("uploads/not-ours.txt", now - 2 * hour),
        (f"{named}-copy", now - 2 * hour),
        ("old-orphan/" + named.rsplit("/", 1)[1].replace("a", "b"), now - 2 * hour),
        ("fresh-orphan", now - timedelta(minutes=5)),
    ]

    page = PendingUpload.objects.outbox_orphans(objects, grace=hour)

    assert sorted(page.orphans) == sorted(key for key, _ in objects[2:])
    assert sorted(page.reapable) == sorted(key for key, _ in objects[2:5])
    assert PendingUpload.objects.outbox_orphans([], grace=hour) == ([], [])


def migrate_to(*targets: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_the_migration_to_key_arrays_keeps_every_queued_key_both_ways():
    rows = ("pending_uploads", "0003_object_storage")
    arrays = ("pending_uploads", "0004_outbox_key_arrays")
    try:
        migrate_to(rows)
        run_sql("INSERT INTO pending_uploads_object_deletions (key) VALUES ('a'), ('b')")
        migrate_to(arrays)
        # A batch's keys are TOASTed uncompressed (EXTERNAL): random UUIDs barely compress.
        assert run_sql(
            "SELECT attstorage FROM pg_attribute WHERE attname = 'keys'"
            " AND attrelid = 'pending_uploads_object_deletions'::regclass"
        ) == [("e",)]
        assert sorted(run_sql("SELECT keys FROM pending_uploads_object_deletions")) == [
            (["a"],),
            (["b"],),
        ]
        run_sql("INSERT INTO pending_uploads_object_deletions (keys) VALUES ('{c,d}')")
        migrate_to(rows)
        assert sorted(run_sql("SELECT key FROM pending_uploads_object_deletions")) == [
            ("a",),
            ("b",),
            ("c",),
            ("d",),
        ]
    finally:
        migrate_to()
