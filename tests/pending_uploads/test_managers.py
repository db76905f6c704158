"""PendingUpload.objects on a real PostgreSQL: storage, the batched sweep and its query plans."""

from __future__ import annotations

import io
import itertools
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.contrib.postgres.functions import TransactionNow
from django.db import DatabaseError, connection, connections, transaction

from pending_uploads import managers, metrics
from pending_uploads.managers import (
    SWEEP_BATCH_SQL,
    SWEEP_PREVIEW_SQL,
    AckOutcome,
    Backlog,
    FileTooLarge,
    NewUpload,
    SweepError,
    SweepResult,
)
from pending_uploads.models import PendingUpload
from tests.helpers import (
    current_database_url,
    run_sql,
    run_together,
    table_locked_elsewhere,
    upload_sweep,
)

HOUR = 3600.0
RETENTION = timedelta(hours=1)
TTL = timedelta(hours=24)
MAX_BYTES = 1024


def insert_rows(
    count: int = 1,
    *,
    acked_ago: float | None = None,
    expires_in: float = HOUR,
    workspace_id: uuid.UUID | None = None,
    spread_seconds: int = 0,
) -> list[uuid.UUID]:
    """Insert ``count`` one-byte rows timed relative to the database's now(); return their ids.

    ``spread_seconds`` > 0 moves row i a further ``i % spread_seconds`` seconds away from now()
    (acked_at further back, expires_at further out on its side), so batches see distinct keys
    as well as runs of equal ones without any row changing category.
    """
    rows = run_sql(
        """
        INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, acked_at,
                                     expires_at)
        SELECT %(workspace_id)s, decode('01', 'hex'), 1, 'f' || i,
               now() - make_interval(secs => %(acked_ago)s + i %% %(spread)s),
               now() + make_interval(
                   secs => %(expires_in)s + sign(%(expires_in)s) * (i %% %(spread)s)
               )
          FROM generate_series(1, %(count)s) AS i
        RETURNING file_id
        """,
        {
            "workspace_id": workspace_id or uuid.uuid4(),
            "acked_ago": acked_ago,
            "expires_in": expires_in,
            "spread": max(spread_seconds, 1),
            "count": count,
        },
    )
    return [row[0] for row in rows]


def surviving(ids: list[uuid.UUID]) -> set[uuid.UUID]:
    return set(PendingUpload.objects.filter(file_id__in=ids).values_list("file_id", flat=True))


def upload(name: str, data: bytes = b"data", size: int | None = None) -> NewUpload:
    return NewUpload(name, "text/plain", len(data) if size is None else size, io.BytesIO(data))


# (case, acked_ago seconds or None for unacked, expires_in seconds, deleted as SweepResult)
SWEEP_CASES = [
    ("acked within retention", 1800.0, HOUR, SweepResult(0, 0)),
    ("acked one second inside retention", HOUR - 1, HOUR, SweepResult(0, 0)),
    ("acked exactly at retention", HOUR, HOUR, SweepResult(1, 0)),
    ("acked past retention", 5400.0, HOUR, SweepResult(1, 0)),
    # Acked rows leave by retention only; their expiry no longer matters.
    ("acked within retention, past expiry", 60.0, -HOUR, SweepResult(0, 0)),
    ("unacked expired", None, -1.0, SweepResult(0, 1)),
    # expires_at == now() is not live (open_chunks says so too), so the sweep takes it.
    ("unacked expiring exactly now", None, 0.0, SweepResult(0, 1)),
    ("fresh unacked", None, HOUR, SweepResult(0, 0)),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("acked_ago", "expires_in", "expected"),
    [case[1:] for case in SWEEP_CASES],
    ids=[case[0] for case in SWEEP_CASES],
)
def test_sweep_single_row(acked_ago, expires_in, expected):
    ids = insert_rows(acked_ago=acked_ago, expires_in=expires_in)
    result = upload_sweep(RETENTION)
    assert result == expected
    assert result.total == expected.total
    assert len(surviving(ids)) == 1 - expected.total


@pytest.mark.django_db
def test_sweep_both_categories_in_one_call():
    acked_old = insert_rows(3, acked_ago=2 * HOUR, spread_seconds=60)
    acked_recent = insert_rows(2, acked_ago=60.0)
    expired = insert_rows(4, expires_in=-60.0, spread_seconds=30)
    live = insert_rows(5, expires_in=HOUR)
    result = upload_sweep(RETENTION)
    assert result == SweepResult(acked=3, expired=4)
    assert result.total == 7
    assert surviving(acked_old + expired) == set()
    assert surviving(acked_recent + live) == set(acked_recent + live)


@pytest.mark.django_db
@pytest.mark.parametrize("retention_seconds", [-1, -HOUR, -30 * 86400.0, 0])
def test_sweep_negative_retention_behaves_like_zero(retention_seconds):
    acked_now = insert_rows(acked_ago=0.0)
    acked_past = insert_rows(2, acked_ago=1.0)
    # Clamped, a negative retention cannot reach an acked_at in the future (clock skew).
    acked_future = insert_rows(acked_ago=-10.0)
    live = insert_rows(expires_in=HOUR)
    result = upload_sweep(timedelta(seconds=retention_seconds))
    assert result == SweepResult(acked=3, expired=0)
    assert surviving(acked_now + acked_past) == set()
    assert surviving(acked_future + live) == set(acked_future + live)


@pytest.mark.django_db
def test_sweep_zero_retention_deletes_every_acked_row(poll_workspace):
    ws_id = poll_workspace.id
    row = PendingUpload.objects.put(ws_id, upload("now.txt"), ttl=TTL, max_bytes=MAX_BYTES)
    assert PendingUpload.objects.ack(ws_id, row.file_id) is AckOutcome.ACKED
    older = insert_rows(4, acked_ago=30.0, spread_seconds=10)
    unacked = insert_rows(2, expires_in=60.0)
    result = upload_sweep(timedelta(0))
    assert result == SweepResult(acked=5, expired=0)
    assert surviving([row.file_id, *older]) == set()
    assert surviving(unacked) == set(unacked)


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [False, True], ids=["sweep", "dry_run"])
def test_sweep_database_error_is_wrapped(dry_run):
    run_sql("SET LOCAL lock_timeout = '20ms'")
    # The savepoint keeps the test transaction usable after the failed statement.
    with table_locked_elsewhere(), pytest.raises(SweepError) as caught, transaction.atomic():
        upload_sweep(RETENTION, dry_run=dry_run)
    error = caught.value
    assert "pending_uploads sweep" in str(error)
    assert isinstance(error.__cause__, DatabaseError)
    # lock_not_available: a real PostgreSQL error, not a stand-in.
    assert error.__cause__.__cause__.sqlstate == "55P03"
    assert error.partial == SweepResult(0, 0)


@pytest.mark.django_db(transaction=True)
def test_sweep_error_after_a_committed_batch_reports_partial_counts():
    ids = insert_rows(10, acked_ago=2 * HOUR, spread_seconds=10)
    calls: list[SweepResult] = []

    with ExitStack() as held:

        def on_batch(total: SweepResult, number: int) -> None:
            calls.append(total)
            # Our batch has committed, so another connection can now take the table from us.
            if number == 1:
                held.enter_context(table_locked_elsewhere())

        run_sql("SET lock_timeout = '50ms'")
        try:
            with pytest.raises(SweepError) as caught:
                upload_sweep(RETENTION, batch_size=4, on_batch=on_batch)
        finally:
            run_sql("RESET lock_timeout")
    assert calls == [SweepResult(4, 0)]
    assert caught.value.partial == SweepResult(4, 0)
    assert caught.value.__cause__.__cause__.sqlstate == "55P03"
    # The first batch committed; the rest waits for the next run, which works.
    assert len(surviving(ids)) == 6
    assert upload_sweep(RETENTION, batch_size=4) == SweepResult(6, 0)
    assert surviving(ids) == set()


@pytest.mark.django_db
@pytest.mark.parametrize("retention_seconds", [HOUR, 0, -HOUR])
def test_dry_run_counts_what_the_sweep_then_deletes(retention_seconds):
    insert_rows(3, acked_ago=2 * HOUR, spread_seconds=5)
    insert_rows(2, acked_ago=60.0)
    insert_rows(4, expires_in=-5.0)
    insert_rows(6, expires_in=HOUR)
    before = PendingUpload.objects.count()
    retention = timedelta(seconds=retention_seconds)
    preview = upload_sweep(retention, dry_run=True)
    assert PendingUpload.objects.count() == before
    assert preview.total > 0
    result = upload_sweep(retention)
    assert result == preview
    assert PendingUpload.objects.count() == before - result.total


@pytest.mark.django_db
@pytest.mark.parametrize(("acked", "expired"), [(12_001, 0), (0, 12_001), (7_001, 5_000)], ids=str)
def test_sweep_batches_delete_every_eligible_row(acked, expired):
    if acked:
        insert_rows(acked, acked_ago=2 * HOUR, spread_seconds=3600)
    if expired:
        insert_rows(expired, expires_in=-1.0, spread_seconds=3600)
    kept = insert_rows(50, acked_ago=60.0) + insert_rows(50, expires_in=HOUR)
    totals: list[SweepResult] = []
    numbers: list[int] = []

    def on_batch(total: SweepResult, number: int) -> None:
        totals.append(total)
        numbers.append(number)

    result = upload_sweep(RETENTION, batch_size=5000, on_batch=on_batch)
    assert result == SweepResult(acked, expired)
    assert PendingUpload.objects.count() == len(kept)
    # Each arm stops on its first short batch.
    expected_batches = max(acked // 5000, expired // 5000) + 1
    assert numbers == list(range(1, expected_batches + 1))
    assert all(a.total < b.total for a, b in itertools.pairwise(totals))
    assert totals[-1] == result


@pytest.mark.django_db
def test_single_arm_backlog_takes_three_batches():
    insert_rows(12_001, acked_ago=2 * HOUR, spread_seconds=7200)
    totals: list[int] = []
    result = upload_sweep(
        RETENTION, batch_size=5000, on_batch=lambda total, number: totals.append(total.total)
    )
    assert result == SweepResult(12_001, 0)
    assert totals == [5000, 10_000, 12_001]


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [1, 3, 4, 7])
def test_equal_keys_across_batch_boundaries_are_all_deleted(batch_size):
    # Runs of identical acked_at / expires_at straddle the batch boundaries, so the keyset
    # continuation must include the last key (>=), not skip past it.
    acked_same = insert_rows(10, acked_ago=2 * HOUR)
    acked_other = insert_rows(5, acked_ago=3 * HOUR)
    expired_same = insert_rows(9, expires_in=-10.0)
    kept = insert_rows(3, acked_ago=10.0) + insert_rows(3, expires_in=10.0)
    result = upload_sweep(RETENTION, batch_size=batch_size)
    assert result == SweepResult(acked=15, expired=9)
    assert surviving(acked_same + acked_other + expired_same) == set()
    assert surviving(kept) == set(kept)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sweepers", [2, 4])
def test_concurrent_sweeps_share_the_work_without_double_counting(sweepers):
    eligible = insert_rows(1500, acked_ago=2 * HOUR, spread_seconds=300)
    eligible += insert_rows(1500, expires_in=-60.0, spread_seconds=300)
    not_eligible = insert_rows(500, expires_in=HOUR, spread_seconds=300)
    not_eligible += insert_rows(300, acked_ago=60.0, spread_seconds=30)
    not_eligible += insert_rows(200, acked_ago=120.0, expires_in=-HOUR)
    results = run_together(lambda: upload_sweep(RETENTION, batch_size=100), sweepers)

    assert len(results) == sweepers
    total = sum(results, SweepResult(0, 0))
    assert total == SweepResult(acked=1500, expired=1500)
    assert surviving(eligible) == set()
    assert surviving(not_eligible) == set(not_eligible)
    assert PendingUpload.objects.count() == len(not_eligible)


def swept_total() -> float:
    """The sweep's counter as metric_totals holds it, both labels."""
    [(total,)] = run_sql(
        "SELECT coalesce(sum(value), 0) FROM metric_totals WHERE metric = %s",
        [metrics.uploads_swept.name],
    )
    return total


def in_a_thread(pool: ThreadPoolExecutor, job: Callable[[], Any]) -> Future:
    """``job`` on a pool thread, which closes its own connection afterwards."""

    def run() -> Any:
        try:
            return job()
        finally:
            connections.close_all()

    return pool.submit(run)


def until_a_sweep_waits_for_a_row(timeout: float = 10.0) -> None:
    """Return once a session of this database waits for a row another transaction holds."""
    deadline = time.monotonic() + timeout
    while not run_sql(
        "SELECT 1 FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'transactionid'"
    ):
        assert time.monotonic() < deadline, "the sweep never waited for a row lock"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_sweep_beside_another_sweeps_open_batch_takes_only_the_other_rows():
    # The first sweep's batch is open: its rows are locked, the second sweep skips them and
    # takes the later ones. Each row is deleted and counted once (the second's counter upsert
    # waits for the first's commit).
    first_batch = insert_rows(5, acked_ago=2 * HOUR, spread_seconds=5)
    first_batch += insert_rows(5, expires_in=-60.0, spread_seconds=5)
    later = insert_rows(3, acked_ago=HOUR + 600) + insert_rows(3, expires_in=-10.0)
    kept = insert_rows(3, expires_in=HOUR)
    before = swept_total()
    start = datetime(1, 1, 1, tzinfo=UTC)
    first_params = {
        "retention_seconds": HOUR,
        "counter": metrics.uploads_swept.name,
        "max_bytes": 1 << 20,
        "acked_from": start,
        "expired_from": start,
        "acked_limit": 5,
        "expired_limit": 5,
    }
    with psycopg.connect(current_database_url()) as first, ThreadPoolExecutor(1) as pool:
        acked, expired, *_ = first.execute(SWEEP_BATCH_SQL, first_params).fetchone()
        second = in_a_thread(pool, lambda: upload_sweep(RETENTION, batch_size=5))
        until_a_sweep_waits_for_a_row()
        first.commit()
        assert second.result(timeout=30) == SweepResult(3, 3)

    assert (acked, expired) == (5, 5)
    assert surviving(first_batch + later) == set()
    assert surviving(kept) == set(kept)
    assert swept_total() - before == len(first_batch + later)


@pytest.mark.django_db(transaction=True)
def test_an_update_racing_the_sweep_never_gets_an_ineligible_row_deleted():
    # Three rows expired at the same instant. While the sweep runs, one is being acked (it
    # leaves the sweep's predicate: acked inside retention) and one fetched (it stays expired).
    acked_late, fetched_late, untouched = insert_rows(3, expires_in=-60.0)
    before = swept_total()
    with psycopg.connect(current_database_url()) as other:
        other.execute(
            "UPDATE pending_uploads SET acked_at = now() WHERE file_id = %s", [acked_late]
        )
        other.execute(
            "UPDATE pending_uploads SET fetched_at = now() WHERE file_id = %s", [fetched_late]
        )
        # The updating transaction holds both rows: the sweep skips them without waiting.
        assert upload_sweep(RETENTION) == SweepResult(0, 1)
        other.commit()

    # The next sweep takes the fetched row, still expired, and keeps the acked one.
    assert upload_sweep(RETENTION) == SweepResult(0, 1)
    assert surviving([acked_late, fetched_late, untouched]) == {acked_late}
    assert swept_total() - before == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arm", "bytes_in", "batches"),
    [
        ("acked", "the table", [3, 6, 9, 10]),
        ("expired", "the table", [3, 6, 9, 10]),
        # In a bucket the bytes are not the table's: deleting a row costs the same whatever
        # its size, so the cap does not hold the batch back.
        ("acked", "a bucket", [10]),
        ("expired", "a bucket", [10]),
    ],
)
def test_batches_stop_at_the_byte_cap_and_continue_from_there(arm, bytes_in, batches):
    # Ten rows that claim 1,000 bytes each; a 2,500-byte cap takes three rows per batch
    # (a row is taken while the bytes before it are under the cap).
    if arm == "acked":
        insert_rows(10, acked_ago=2 * HOUR, spread_seconds=10)
    else:
        insert_rows(10, expires_in=-10.0, spread_seconds=10)
    insert_rows(5, expires_in=HOUR)
    run_sql("UPDATE pending_uploads SET size_bytes = 1000")
    if bytes_in == "a bucket":
        run_sql("UPDATE pending_uploads SET content = NULL, storage_key = 'k/' || file_id")
    totals: list[int] = []

    result = upload_sweep(
        timedelta(hours=1),
        batch_size=100,
        batch_bytes=2500,
        on_batch=lambda done, number: totals.append(done.total),
    )

    assert result == (SweepResult(10, 0) if arm == "acked" else SweepResult(0, 10))
    assert totals == batches
    assert PendingUpload.objects.count() == 5


def explain(sql: str, params: dict[str, object]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def first_batch_plan(limit: int) -> str:
    start = datetime(1, 1, 1, tzinfo=UTC)
    return explain(
        SWEEP_BATCH_SQL,
        {
            "retention_seconds": HOUR,
            "counter": "molecule_pending_uploads_swept",
            "max_bytes": 32 * 1024 * 1024,
            "acked_from": start,
            "expired_from": start,
            "acked_limit": limit,
            "expired_limit": limit,
        },
    )


@pytest.mark.django_db
def test_sweep_statements_use_the_partial_indexes():
    # A mostly-live table, as in production: few rows eligible, many unacked and unexpired.
    insert_rows(20_000, expires_in=HOUR, spread_seconds=20_000)
    insert_rows(300, acked_ago=60.0, spread_seconds=3000)
    insert_rows(20, acked_ago=2 * HOUR, spread_seconds=600)
    insert_rows(20, expires_in=-10.0, spread_seconds=600)
    run_sql("ANALYZE pending_uploads")
    batch_plan = first_batch_plan(5000)
    preview_plan = explain(SWEEP_PREVIEW_SQL, {"retention_seconds": HOUR})
    for plan in (batch_plan, preview_plan):
        assert "pending_uploads_acked_idx" in plan, plan
        assert "pending_uploads_expiry_idx" in plan, plan
        assert "Seq Scan on pending_uploads" not in plan, plan


@pytest.mark.django_db
def test_batches_walk_each_index_in_key_order_when_many_rows_are_eligible():
    # A backlog (10 % of rows acked past retention, as in bench/): a misestimated acked arm
    # would sort a bitmap scan of every eligible row on every batch instead.
    insert_rows(18_000, expires_in=HOUR, spread_seconds=20_000)
    insert_rows(2_000, acked_ago=2 * HOUR, spread_seconds=20_000)
    insert_rows(2_000, expires_in=-10.0, spread_seconds=20_000)
    run_sql("ANALYZE pending_uploads")
    plan = first_batch_plan(500)
    assert "Index Scan using pending_uploads_acked_idx" in plan, plan
    assert "Index Scan using pending_uploads_expiry_idx" in plan, plan
    # Sorting the picked rows for the byte cap is fine; sorting a scan of the table is not.
    assert "Bitmap Heap Scan" not in plan, plan
    assert "Sort Key: pending_uploads.acked_at" not in plan, plan
    assert "Sort Key: pending_uploads_1.expires_at" not in plan, plan
    assert "Tid Scan on pending_uploads" in plan, plan


@pytest.mark.django_db
def test_put_batch_is_atomic_on_a_database_error(poll_workspace):
    names = ["a.txt", "b.txt", "x" * 101, "d.txt"]

    with pytest.raises(DatabaseError) as caught:
        PendingUpload.objects.put_batch(
            poll_workspace.id, [upload(name) for name in names], ttl=TTL, max_bytes=MAX_BYTES
        )

    assert caught.value.__cause__.sqlstate == "23514"
    assert PendingUpload.objects.count() == 0


@pytest.mark.django_db
def test_put_batch_stores_every_file_with_the_ttl(poll_workspace):
    ws_id = poll_workspace.id
    rows = PendingUpload.objects.put_batch(
        ws_id,
        [upload("a.txt", b"alpha"), upload("b.bin", b"\x00\xff")],
        ttl=TTL,
        max_bytes=MAX_BYTES,
    )
    assert [row.filename for row in rows] == ["a.txt", "b.bin"]
    stored = {row.filename: bytes(row.content) for row in PendingUpload.objects.all()}
    assert stored == {"a.txt": b"alpha", "b.bin": b"\x00\xff"}
    (delta,) = run_sql(
        "SELECT DISTINCT expires_at - created_at FROM pending_uploads WHERE workspace_id = %s",
        [ws_id],
    )
    assert delta == (TTL,)


@pytest.mark.django_db
@pytest.mark.parametrize("oversized_index", [0, 2])
def test_put_batch_checks_every_size_before_any_write(poll_workspace, oversized_index):
    uploads = [upload("a.txt"), upload("b.txt"), upload("c.txt")]
    uploads[oversized_index] = upload("big.bin", b"x", size=MAX_BYTES + 1)
    with pytest.raises(FileTooLarge) as caught:
        PendingUpload.objects.put_batch(poll_workspace.id, uploads, ttl=TTL, max_bytes=MAX_BYTES)
    assert (caught.value.filename, caught.value.size, caught.value.limit) == (
        "big.bin",
        MAX_BYTES + 1,
        MAX_BYTES,
    )
    assert PendingUpload.objects.count() == 0


@pytest.mark.django_db
def test_put_accepts_a_file_exactly_at_the_cap(poll_workspace):
    data = b"y" * MAX_BYTES
    row = PendingUpload.objects.put(
        poll_workspace.id, upload("cap.bin", data), ttl=TTL, max_bytes=MAX_BYTES
    )
    assert bytes(PendingUpload.objects.get(pk=row.file_id).content) == data


def make_state(state: str, ws_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """Create one row in ``state``; return (workspace to ask with, file_id)."""
    if state == "absent":
        return ws_id, uuid.uuid4()
    row = PendingUpload.objects.put(ws_id, upload("s.txt"), ttl=TTL, max_bytes=MAX_BYTES)
    rows = PendingUpload.objects.filter(pk=row.file_id)
    if state == "acked":
        rows.update(acked_at=TransactionNow())
    elif state == "expired":
        rows.update(expires_at=TransactionNow() - timedelta(seconds=1))
    elif state == "expiring_now":
        rows.update(expires_at=TransactionNow())
    elif state == "foreign":
        return uuid.uuid4(), row.file_id
    return ws_id, row.file_id


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["expired", "expiring_now", "foreign", "absent"])
def test_rows_that_are_not_fetchable_are_invisible(poll_workspace, state):
    ws_id, file_id = make_state(state, poll_workspace.id)
    assert PendingUpload.objects.open_chunks(file_id, workspace_id=ws_id) is None
    assert PendingUpload.objects.mark_fetched(ws_id, file_id) is False
    assert PendingUpload.objects.ack(ws_id, file_id) is AckOutcome.ABSENT
    assert PendingUpload.objects.list_for_workspace(ws_id) == []
    if state != "absent":
        row = PendingUpload.objects.get(pk=file_id)
        assert (row.fetched_at, row.acked_at) == (None, None)


@pytest.mark.django_db
def test_an_acked_row_stays_fetchable_but_leaves_the_list(poll_workspace):
    ws_id, file_id = make_state("acked", poll_workspace.id)
    assert PendingUpload.objects.open_chunks(file_id, workspace_id=ws_id) is not None
    assert PendingUpload.objects.mark_fetched(ws_id, file_id) is True
    assert PendingUpload.objects.list_for_workspace(ws_id) == []


@pytest.mark.django_db
def test_fetch_then_ack_then_ack_again(poll_workspace):
    ws_id = poll_workspace.id
    row = PendingUpload.objects.put(ws_id, upload("f.txt", b"bytes"), ttl=TTL, max_bytes=MAX_BYTES)
    opened = PendingUpload.objects.open_chunks(row.file_id, workspace_id=ws_id)
    assert opened is not None
    assert b"".join(opened.chunks) == b"bytes"
    assert opened.row.fetched_at is None
    assert PendingUpload.objects.mark_fetched(ws_id, row.file_id) is True
    (now,) = run_sql("SELECT now()")[0]
    assert PendingUpload.objects.get(pk=row.file_id).fetched_at == now
    assert PendingUpload.objects.ack(ws_id, row.file_id) is AckOutcome.ACKED
    assert PendingUpload.objects.get(pk=row.file_id).acked_at == now
    # The first ack's stamp stays; a repeated ack is still an ack.
    first = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    PendingUpload.objects.filter(pk=row.file_id).update(acked_at=first)
    assert PendingUpload.objects.ack(ws_id, row.file_id) is AckOutcome.ACKED
    assert PendingUpload.objects.get(pk=row.file_id).acked_at == first
    assert PendingUpload.objects.open_chunks(row.file_id, workspace_id=ws_id) is not None


@pytest.mark.django_db
def test_mark_fetched_stamps_every_fetch(poll_workspace):
    ws_id = poll_workspace.id
    row = PendingUpload.objects.put(ws_id, upload("f.txt"), ttl=TTL, max_bytes=MAX_BYTES)
    first = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    PendingUpload.objects.filter(pk=row.file_id).update(fetched_at=first)
    assert PendingUpload.objects.mark_fetched(ws_id, row.file_id) is True
    (now,) = run_sql("SELECT now()")[0]
    assert PendingUpload.objects.get(pk=row.file_id).fetched_at == now


@pytest.mark.django_db
def test_list_for_workspace_keeps_upload_order_within_one_transaction(register):
    ws = register("lister", "poll")
    names = [f"{n:02d}-{uuid.uuid4().hex[:6]}.txt" for n in reversed(range(20))]
    PendingUpload.objects.put_batch(
        ws.id, [upload(name) for name in names], ttl=TTL, max_bytes=MAX_BYTES
    )
    later = PendingUpload.objects.put(ws.id, upload("later.txt"), ttl=TTL, max_bytes=MAX_BYTES)
    listed = list(PendingUpload.objects.list_for_workspace(ws.id))
    assert [row.filename for row in listed] == [*names, "later.txt"]
    assert listed[-1].file_id == later.file_id
    # The list defers the bytes.
    assert all("content" in row.get_deferred_fields() for row in listed)


@pytest.mark.django_db
def test_list_for_workspace_excludes_acked_expired_and_foreign_rows(register):
    ws = register("lister", "poll")
    other = register("other", "poll")
    rows = PendingUpload.objects.put_batch(
        ws.id, [upload(f"{n}.txt") for n in range(5)], ttl=TTL, max_bytes=MAX_BYTES
    )
    PendingUpload.objects.put(other.id, upload("foreign.txt"), ttl=TTL, max_bytes=MAX_BYTES)
    assert PendingUpload.objects.ack(ws.id, rows[1].file_id) is AckOutcome.ACKED
    PendingUpload.objects.filter(pk=rows[3].file_id).update(
        expires_at=TransactionNow() - timedelta(microseconds=1)
    )
    listed = PendingUpload.objects.list_for_workspace(ws.id)
    assert [row.filename for row in listed] == ["0.txt", "2.txt", "4.txt"]


@pytest.mark.django_db
def test_list_pages_by_keyset_without_gaps_even_within_one_transaction(register):
    ws = register("lister", "poll")
    rows = PendingUpload.objects.put_batch(
        ws.id, [upload(f"{n}.txt") for n in range(7)], ttl=TTL, max_bytes=MAX_BYTES
    )
    # Rows of one request share no timestamp here, but force ties to prove file_id breaks them.
    PendingUpload.objects.filter(pk__in=[r.file_id for r in rows]).update(
        created_at=TransactionNow()
    )
    expected = sorted(r.file_id for r in rows)
    seen, after = [], None
    while page := PendingUpload.objects.list_for_workspace(ws.id, after=after, limit=3):
        seen += [row.file_id for row in page]
        # A row acked while paging still anchors the next page.
        PendingUpload.objects.ack(ws.id, page[-1].file_id)
        after = PendingUpload.objects.page_key(ws.id, page[-1].file_id)
    assert seen == expected
    assert PendingUpload.objects.page_key(ws.id, uuid.uuid4()) is None


@pytest.mark.django_db
def test_backlog_of_an_empty_table():
    assert PendingUpload.objects.backlog() == Backlog(0, 0, 0, 0.0)


@pytest.mark.django_db
def test_backlog_counts_states_and_oldest_unacked_age():
    pending = insert_rows(4)
    fetched = insert_rows(3)
    PendingUpload.objects.filter(pk__in=fetched).update(fetched_at=TransactionNow())
    acked = insert_rows(2, acked_ago=30.0)
    # The oldest unacked row sets the age; an older acked row must not.
    PendingUpload.objects.filter(pk=pending[0]).update(
        created_at=TransactionNow() - timedelta(seconds=300)
    )
    PendingUpload.objects.filter(pk=fetched[0]).update(
        created_at=TransactionNow() - timedelta(seconds=120)
    )
    PendingUpload.objects.filter(pk__in=acked).update(
        created_at=TransactionNow() - timedelta(hours=5)
    )
    backlog = PendingUpload.objects.backlog()
    assert backlog == Backlog(pending=4, fetched=3, acked=2, oldest_unacked_age_seconds=300.0)


def test_sweep_result_arithmetic():
    assert SweepResult(1, 2) + SweepResult(3, 4) == SweepResult(4, 6)
    assert SweepResult(1, 2).total == 3
    assert SweepResult(0, 0).__add__((1, 2)) is NotImplemented
    assert managers.SweepError("x").partial == SweepResult(0, 0)
    assert managers.DrainResult(1, 2) + managers.DrainResult(3, 4) == managers.DrainResult(4, 6)
    assert managers.DrainResult(0, 0).__add__((1, 2)) is NotImplemented


DAY_STARTS = [datetime(2025, 12, 31, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("day", DAY_STARTS),
        ("month", [datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]),
        ("year", [datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]),
    ],
)
def test_date_hierarchy_periods_are_probed_on_the_index(kind, expected):
    # Rows on the last day of one year and the first of the next, with a gap day probed empty.
    for moment in (DAY_STARTS[0] + timedelta(hours=23), DAY_STARTS[1] + timedelta(hours=1)):
        run_sql(
            "INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, created_at)"
            " VALUES (%s, '\\x01', 1, 'f', %s)",
            [uuid.uuid4(), moment],
        )
    rows = PendingUpload.objects.all()

    assert rows.datetimes("created_at", kind, tzinfo=UTC) == expected
    assert rows.datetimes("created_at", kind, "DESC", tzinfo=UTC) == expected[::-1]
    # Django's own implementation, on a field the override leaves alone, agrees.
    assert list(rows.datetimes("created_at", kind, tzinfo=UTC)) == list(
        super(type(rows), rows).datetimes("created_at", kind, tzinfo=UTC)
    )


@pytest.mark.django_db
def test_date_hierarchy_of_an_empty_table_and_of_other_fields():
    assert PendingUpload.objects.all().datetimes("created_at", "day") == []
    insert_rows(1, expires_in=HOUR)
    (expires_day,) = PendingUpload.objects.all().datetimes("expires_at", "day", tzinfo=UTC)
    assert expires_day.tzinfo is not None
