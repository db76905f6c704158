"""Hypothesis: the sweep deletes exactly the specification's predicate, batched or not."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pending_uploads.managers import SweepResult
from pending_uploads.models import PendingUpload
from tests.helpers import run_sql, upload_sweep

# Small offsets collide often (equal keys, rows exactly on a boundary); wide ones spread out.
offsets = st.one_of(st.integers(-3, 3), st.integers(-7200, 7200))


class Row(NamedTuple):
    acked: bool
    # Seconds relative to the database's now(); negative is in the past.
    acked_offset: int
    expires_offset: int


rows_strategy = st.lists(st.builds(Row, st.booleans(), offsets, offsets), max_size=40)

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def insert(rows: list[Row]) -> dict[str, Row]:
    """Insert ``rows`` timed against now() (constant in the test transaction); key by filename."""
    run_sql(
        """
        INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, acked_at,
                                     expires_at)
        SELECT gen_random_uuid(), decode('01', 'hex'), 1, 'r' || n,
               CASE WHEN acked THEN now() + make_interval(secs => acked_offset) END,
               now() + make_interval(secs => expires_offset)
          FROM unnest(%s::int[], %s::bool[], %s::int[], %s::int[])
               AS t(n, acked, acked_offset, expires_offset)
        """,
        [
            list(range(len(rows))),
            [row.acked for row in rows],
            [row.acked_offset for row in rows],
            [row.expires_offset for row in rows],
        ],
    )
    return {f"r{n}": row for n, row in enumerate(rows)}


def eligible(row: Row, retention_seconds: int) -> bool:
    """The specification: acked past (clamped) retention, or unacked and expired."""
    if row.acked:
        return row.acked_offset <= -max(retention_seconds, 0)
    return row.expires_offset <= 0


def check_sweep(rows: list[Row], retention_seconds: int, batch_size: int) -> None:
    run_sql("DELETE FROM pending_uploads")
    by_name = insert(rows)
    expected = {name for name, row in by_name.items() if eligible(row, retention_seconds)}
    expected_acked = sum(by_name[name].acked for name in expected)
    retention = timedelta(seconds=retention_seconds)

    preview = upload_sweep(retention, dry_run=True)
    result = upload_sweep(retention, batch_size=batch_size)

    remaining = set(PendingUpload.objects.values_list("filename", flat=True))
    assert set(by_name) - remaining == expected
    assert result == SweepResult(acked=expected_acked, expired=len(expected) - expected_acked)
    assert preview == result


@pytest.mark.django_db
@SETTINGS
@given(rows=rows_strategy, retention_seconds=offsets)
def test_sweep_deletes_exactly_the_predicate(rows, retention_seconds):
    check_sweep(rows, retention_seconds, batch_size=5000)


@pytest.mark.django_db
@SETTINGS
@given(
    rows=rows_strategy.filter(lambda rows: len(rows) > 3),
    retention_seconds=offsets,
    batch_size=st.integers(1, 3),
)
def test_batched_sweep_deletes_exactly_the_predicate(rows, retention_seconds, batch_size):
    assume(sum(eligible(row, retention_seconds) for row in rows) > batch_size)
    check_sweep(rows, retention_seconds, batch_size=batch_size)
