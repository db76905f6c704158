"""The activity retention sweep's statements: exactly the rows past retention, in batches."""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from molecule.conf import DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE
from molecule.models import ActivityLog, InboxDeliveryState, Workspace
from molecule.retention import (
    ACTIVITY_SWEEP_BATCH_SQL,
    ACTIVITY_SWEEP_PREVIEW_SQL,
    ActivityHorizons,
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
SOFT = timedelta(days=7)
HARD = timedelta(days=30)
HORIZONS = ActivityHorizons.of(soft=SOFT, hard=HARD)
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


def acknowledge(workspace_id: uuid.UUID, seq: int) -> None:
    InboxDeliveryState.objects.ack(workspace_id, seq)


def kinds_left() -> dict[str, int]:
    return dict(run_sql("SELECT activity_type, count(*) FROM activity_logs GROUP BY 1"))


def sweep(horizons: ActivityHorizons = HORIZONS, **options: Any) -> ActivitySweepResult:
    options.setdefault("batch_size", DEFAULT_ACTIVITY_SWEEP_BATCH_SIZE)
    return ActivityLog.objects.sweep(horizons, counter=COUNTER, **options)


# (case, age in seconds, the workspace's acknowledged mark relative to the row, deleted?)
# The mark is "later" (a later row was acknowledged), "self" (this row was the last one
# acknowledged: the poller's cursor), "earlier", or None (the workspace never acknowledged).
RETENTION_CASES = [
    ("a day old, acknowledged", DAY, "later", False),
    ("one second inside the soft horizon, acknowledged", 7 * DAY - 1, "later", False),
    ("one second past the soft horizon, acknowledged", 7 * DAY + 1, "later", True),
    ("past the soft horizon, the acknowledged mark itself", 8 * DAY, "self", False),
    ("past the soft horizon, not yet acknowledged", 8 * DAY, "earlier", False),
    ("past the soft horizon, never acknowledged", 8 * DAY, None, False),
    ("one second inside the hard horizon, never acknowledged", 30 * DAY - 1, None, False),
    ("one second past the hard horizon, never acknowledged", 30 * DAY + 1, None, True),
    ("past the hard horizon, the acknowledged mark itself", 31 * DAY, "self", True),
    ("a year old, acknowledged", 365 * DAY, "later", True),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("age", "mark", "deleted"),
    [case[1:] for case in RETENTION_CASES],
    ids=[case[0] for case in RETENTION_CASES],
)
def test_sweep_deletes_exactly_the_rows_past_their_horizon(
    age: float, mark: str | None, deleted: bool
) -> None:
    ws = workspace()
    add_rows(ws, "row", 1, age - 1)  # generate_series adds the 1
    ((row_id,),) = run_sql("SELECT id FROM activity_logs")
    if mark is not None:
        acknowledge(ws, {"later": row_id + 1000, "self": row_id, "earlier": row_id - 1}[mark])

    assert ActivityLog.objects.sweep_preview(HORIZONS) == int(deleted)
    assert sweep().deleted == int(deleted)
    assert kinds_left() == ({} if deleted else {"row": 1})


@pytest.mark.django_db
def test_each_workspace_is_judged_by_its_own_acknowledged_mark() -> None:
    ahead, behind, silent = workspace(), workspace(), workspace()
    for ws, kind in ((ahead, "ahead"), (behind, "behind"), (silent, "silent")):
        add_rows(ws, kind, 4, 10 * DAY)
    ids = {
        kind: [
            i
            for (i,) in run_sql(
                "SELECT id FROM activity_logs WHERE activity_type = %s ORDER BY id", [kind]
            )
        ]
        for kind in ("ahead", "behind")
    }
    acknowledge(ahead, ids["ahead"][-1])
    acknowledge(behind, ids["behind"][1])

    result = sweep()

    # ahead keeps only its mark; behind keeps its mark and what follows; silent keeps all.
    assert result.deleted == 3 + 1
    assert kinds_left() == {"ahead": 1, "behind": 3, "silent": 4}


@pytest.mark.django_db
def test_sweep_works_in_batches_and_counts_each_in_the_totals() -> None:
    ws = workspace()
    add_rows(ws, "old", 25, 31 * DAY)
    add_rows(ws, "new", 7, 0)
    before = metrics_saved()
    seen: list[ActivitySweepResult] = []

    result = sweep(batch_size=10, on_batch=seen.append)

    # 10 + 10 + 5: the short third window ends the sweep.
    assert result == ActivitySweepResult(deleted=25, batches=3)
    assert [batch.deleted for batch in seen] == [10, 20, 25]
    assert kinds_left() == {"new": 7}
    assert_metric_delta(before, 25, f"{COUNTER}_total", outcome="deleted")


@pytest.mark.django_db
def test_unacknowledged_rows_between_the_horizons_are_read_a_window_at_a_time() -> None:
    # 5 acknowledged rows behind 25 that nobody acknowledged yet: each batch reads a window
    # of at most 10 index entries, so the last statement does not scan all 25 to find none.
    ws = workspace()
    add_rows(ws, "acked", 5, 12 * DAY)
    add_rows(ws, "waiting", 25, 8 * DAY)
    ((mark,),) = run_sql("SELECT max(id) FROM activity_logs WHERE activity_type = 'acked'")
    acknowledge(ws, mark + 1)  # a later row, already gone from this table

    result = sweep(batch_size=10)

    assert result == ActivitySweepResult(deleted=5, batches=4)
    assert kinds_left() == {"waiting": 25}


@pytest.mark.django_db
def test_rows_sharing_one_created_at_across_batches_are_all_deleted() -> None:
    ws = workspace()
    # One transaction's rows share created_at: a window boundary falls inside them.
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, created_at) "
        "SELECT %s, 'same', now() - interval '40 days' FROM generate_series(1, 12)",
        [ws],
    )

    result = sweep(batch_size=5)

    assert result.deleted == 12
    assert kinds_left() == {}


# (case, soft, hard, the horizons used, the hard horizon asked for when it was raised)
HORIZON_CASES = [
    ("hard above soft", SOFT, HARD, (SOFT, HARD), None),
    ("hard equal to soft", SOFT, SOFT, (SOFT, SOFT), None),
    ("hard below soft is raised to it", SOFT, timedelta(days=1), (SOFT, SOFT), timedelta(days=1)),
    ("negative soft counts as zero", -SOFT, HARD, (timedelta(0), HARD), None),
    ("both negative", -SOFT, -HARD, (timedelta(0), timedelta(0)), None),
]


@pytest.mark.parametrize(
    ("soft", "hard", "used", "clamped_from"),
    [case[1:] for case in HORIZON_CASES],
    ids=[case[0] for case in HORIZON_CASES],
)
def test_horizons_clamp_the_hard_one_to_the_soft_one(soft, hard, used, clamped_from) -> None:
    horizons = ActivityHorizons.of(soft=soft, hard=hard)

    assert (horizons.soft, horizons.hard) == used
    assert horizons.clamped_from == clamped_from


@pytest.mark.django_db
def test_zero_horizons_delete_every_row_already_written() -> None:
    ws = workspace()
    add_rows(ws, "old", 3, 60)
    zero = ActivityHorizons.of(soft=-SOFT, hard=-HARD)

    assert ActivityLog.objects.sweep_preview(zero) == 3
    assert sweep(zero, batch_size=0).deleted == 3


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
            sweep(batch_size=4, on_batch=lock_after_first)

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
def test_plans_on_a_million_rows_walk_the_created_at_index_a_window_at_a_time() -> None:
    # 1,000,000 rows over 100 workspaces and 29 days, 2 % past the hard horizon, most past the
    # soft one: no sequential scan, and no statement reads beyond its window.
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
            **HORIZONS.params(),
            "created_after": datetime(1, 1, 1, tzinfo=UTC),
            "batch_size": 5000,
            "counter": COUNTER,
        },
    )
    preview_plan = explain(ACTIVITY_SWEEP_PREVIEW_SQL, HORIZONS.params())

    for plan in (batch_plan, preview_plan):
        assert "activity_logs_created_idx" in plan, plan
        assert "Seq Scan on activity_logs" not in plan, plan
        assert "Sort" not in plan, plan
    # The window: the next batch_size entries of the index, read in order up to the limit.
    assert "Index Only Scan using activity_logs_created_idx" in batch_plan, batch_plan
    # The rows picked lie within the window's range of the index, never beyond it.
    picked = batch_plan[batch_plan.index("CTE picked") : batch_plan.index("CTE deleted")]
    assert re.search(r"Index Cond: .*created_at <= \$\d", picked), picked
    assert "inbox_delivery_state_pkey" in picked, picked
    assert "Tid Scan on activity_logs" in batch_plan, batch_plan
