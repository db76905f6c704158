"""The activity retention sweep's statements: exactly the rows past retention, in batches."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from molecule.conf import DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE
from molecule.models import ActivityLog, Workspace
from molecule.retention import (
    ACTIVITY_SWEEP_BATCH_SQL,
    ACTIVITY_SWEEP_PREVIEW_SQL,
    ActivitySweepError,
    ActivitySweepResult,
)
from tests.helpers import (
    assert_metric_delta,
    lock_timeout,
    metrics_saved,
    run_sql,
    table_locked_elsewhere,
)

DAY = 86400.0
RETENTION = timedelta(days=30)
COUNTER = "molecule_activity_logs_swept"

# Rows aged ``age_base + g`` seconds (g = 1..count) for one workspace; existing columns only.
INSERT_ACTIVITY_SQL = """
INSERT INTO activity_logs (workspace_id, activity_type, created_at)
SELECT %(workspace_id)s, %(kind)s, now() - make_interval(secs => %(age_base)s + g)
  FROM generate_series(1, %(count)s) AS g
"""


def workspace() -> uuid.UUID:
    return Workspace.objects.create(token_hash="0" * 64).id


def add_rows(workspace_id: uuid.UUID, kind: str, count: int, age_base: float) -> None:
    run_sql(
        INSERT_ACTIVITY_SQL,
        {"workspace_id": workspace_id, "kind": kind, "count": count, "age_base": age_base},
    )


def kinds_left() -> dict[str, int]:
    return dict(run_sql("SELECT activity_type, count(*) FROM activity_logs GROUP BY 1"))


# (case, age in seconds, deleted?)
RETENTION_CASES = [
    ("a day old", DAY, False),
    ("one second inside retention", 30 * DAY - 1, False),
    ("one second past retention", 30 * DAY + 1, True),
    ("a year old", 365 * DAY, True),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("age", "deleted"),
    [case[1:] for case in RETENTION_CASES],
    ids=[case[0] for case in RETENTION_CASES],
)
def test_sweep_deletes_exactly_the_rows_past_retention(age: float, deleted: bool) -> None:
    add_rows(workspace(), "row", 1, age - 1)  # generate_series adds the 1

    assert ActivityLog.objects.sweep_preview(RETENTION) == int(deleted)
    result = ActivityLog.objects.sweep(
        RETENTION, counter=COUNTER, batch_size=DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE
    )

    assert result.deleted == int(deleted)
    assert kinds_left() == ({} if deleted else {"row": 1})


@pytest.mark.django_db
def test_sweep_works_in_batches_and_counts_each_in_the_totals() -> None:
    ws = workspace()
    add_rows(ws, "old", 25, 31 * DAY)
    add_rows(ws, "new", 7, 0)
    before = metrics_saved()
    seen: list[ActivitySweepResult] = []

    result = ActivityLog.objects.sweep(
        RETENTION, counter=COUNTER, batch_size=10, on_batch=seen.append
    )

    # 10 + 10 + 5: the short third batch ends the sweep.
    assert result == ActivitySweepResult(deleted=25, batches=3)
    assert [batch.deleted for batch in seen] == [10, 20, 25]
    assert kinds_left() == {"new": 7}
    assert_metric_delta(before, 25, f"{COUNTER}_total", outcome="deleted")


@pytest.mark.django_db
def test_rows_sharing_one_created_at_across_batches_are_all_deleted() -> None:
    ws = workspace()
    # One transaction's rows share created_at: a batch boundary falls inside them.
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, created_at) "
        "SELECT %s, 'same', now() - interval '40 days' FROM generate_series(1, 12)",
        [ws],
    )

    result = ActivityLog.objects.sweep(RETENTION, counter=COUNTER, batch_size=5)

    assert result.deleted == 12
    assert kinds_left() == {}


@pytest.mark.django_db
def test_negative_retention_counts_as_zero() -> None:
    ws = workspace()
    add_rows(ws, "old", 3, 60)

    assert ActivityLog.objects.sweep_preview(-RETENTION) == 3
    assert ActivityLog.objects.sweep(-RETENTION, counter=COUNTER, batch_size=0).deleted == 3


@pytest.mark.django_db(transaction=True)
def test_a_failing_batch_keeps_what_earlier_batches_committed_and_counted() -> None:
    ws = workspace()
    add_rows(ws, "old", 6, 31 * DAY)
    before = metrics_saved()

    with contextlib.ExitStack() as held:

        def lock_after_first(done: ActivitySweepResult) -> None:
            # The batch has committed, so another connection can take the table now.
            held.enter_context(table_locked_elsewhere("activity_logs"))

        with lock_timeout("50ms"), pytest.raises(ActivitySweepError) as caught:
            ActivityLog.objects.sweep(
                RETENTION, counter=COUNTER, batch_size=4, on_batch=lock_after_first
            )

    # lock_not_available: a real PostgreSQL error.
    assert caught.value.__cause__.__cause__.sqlstate == "55P03"
    assert caught.value.partial == ActivitySweepResult(4, 1)
    assert kinds_left() == {"old": 2}
    assert_metric_delta(before, 4, f"{COUNTER}_total", outcome="deleted")


def explain(sql: str, params: dict[str, object]) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db
def test_plans_on_a_million_rows_walk_the_created_at_index() -> None:
    # 1,000,000 rows over 100 workspaces and 29 days, 2 % past retention: no sequential scan.
    # Built fast: a temporary activity_logs (it shadows the real one in this session) with the
    # real table's columns, filled before its indexes are built from the real table's own
    # definitions, so the statements plan against exactly the production indexes.
    run_sql(
        "CREATE TEMP TABLE activity_logs (LIKE public.activity_logs "
        "INCLUDING DEFAULTS INCLUDING IDENTITY) "
        "ON COMMIT DROP"
    )
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, created_at) "
        "SELECT (%(ids)s::uuid[])[1 + g %% 100], 'bulk', "
        "       now() - make_interval(secs => (g %% 86400) * 29 + (g %% 50 = 0)::int * 31 * 86400) "
        "  FROM generate_series(1, 1000000) AS g",
        {"ids": [uuid.uuid4() for _ in range(100)]},
    )
    definitions = run_sql(
        "SELECT indexdef FROM pg_indexes "
        "WHERE schemaname = 'public' AND tablename = 'activity_logs'"
    )
    assert any("activity_logs_created_idx" in d for (d,) in definitions), definitions
    for (definition,) in definitions:
        run_sql(definition.replace(" ON public.activity_logs ", " ON pg_temp.activity_logs "))
    run_sql("ANALYZE activity_logs")

    batch_plan = explain(
        ACTIVITY_SWEEP_BATCH_SQL,
        {
            "retention_seconds": RETENTION.total_seconds(),
            "created_from": datetime(1, 1, 1, tzinfo=UTC),
            "batch_size": 5000,
            "counter": COUNTER,
        },
    )
    preview_plan = explain(
        ACTIVITY_SWEEP_PREVIEW_SQL, {"retention_seconds": RETENTION.total_seconds()}
    )

    for plan in (batch_plan, preview_plan):
        assert "activity_logs_created_idx" in plan, plan
        assert "Seq Scan on activity_logs" not in plan, plan
    assert "Index Scan using activity_logs_created_idx" in batch_plan, batch_plan
    assert "Sort" not in batch_plan, batch_plan
    assert "Tid Scan on activity_logs" in batch_plan, batch_plan
