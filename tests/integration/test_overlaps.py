"""Overlaps on a real PostgreSQL: two retention sweepers at once, two first registrations of
one id at once. Each thread has its own connection, as two processes would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from molecule.services.activity_sweep import activity_sweep
from tests.helpers import (
    assert_metric_delta,
    metrics_saved,
    run_sql,
    run_together,
    sql_installed,
)

pytestmark = pytest.mark.django_db(transaction=True)

ELIGIBLE = 20_000
KEPT = 500

# Instrumentation, not a mock: every real DELETE records its row; a row deleted twice would
# break the primary key.
AUDIT_SETUP = (
    "CREATE TABLE overlap_deleted_activity (id bigint PRIMARY KEY)",
    """
    CREATE FUNCTION overlap_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO overlap_deleted_activity VALUES (OLD.id);
        RETURN OLD;
    END
    $$
    """,
    """
    CREATE TRIGGER overlap_audit AFTER DELETE ON activity_logs
    FOR EACH ROW EXECUTE FUNCTION overlap_audit()
    """,
)
AUDIT_TEARDOWN = (
    "DROP TRIGGER IF EXISTS overlap_audit ON activity_logs",
    "DROP FUNCTION IF EXISTS overlap_audit()",
    "DROP TABLE IF EXISTS overlap_deleted_activity",
)


@pytest.fixture
def deletion_audit() -> Iterator[None]:
    with sql_installed(AUDIT_SETUP, AUDIT_TEARDOWN):
        yield


@override_settings(ACTIVITY_SWEEP_BATCH_SIZE=200)
def test_two_retention_sweepers_at_once_delete_every_row_once_and_count_it_once(
    register, deletion_audit
) -> None:
    ws = register("busy").id
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type, created_at) "
        "SELECT %s, 'old', now() - interval '40 days' - g * interval '1 millisecond' "
        "FROM generate_series(1, %s) AS g",
        [ws, ELIGIBLE],
    )
    run_sql(
        "INSERT INTO activity_logs (workspace_id, activity_type) "
        "SELECT %s, 'recent' FROM generate_series(1, %s)",
        [ws, KEPT],
    )
    before = metrics_saved()

    reports = run_together(activity_sweep, 2)

    deleted = [report.deleted for report in reports]
    assert sum(deleted) == ELIGIBLE
    # Both took part: SKIP LOCKED shared the rows rather than making one wait.
    assert all(deleted), deleted
    assert run_sql("SELECT count(*), count(DISTINCT id) FROM overlap_deleted_activity") == [
        (ELIGIBLE, ELIGIBLE)
    ]
    assert dict(run_sql("SELECT activity_type, count(*) FROM activity_logs GROUP BY 1")) == {
        "recent": KEPT
    }
    assert_metric_delta(before, ELIGIBLE, "molecule_activity_logs_swept_total", outcome="deleted")
    assert_metric_delta(before, 0, "molecule_activity_logs_swept_total", outcome="error")


ROUNDS = 10


def test_two_first_registrations_of_one_id_get_one_token_and_one_401() -> None:
    for _ in range(ROUNDS):
        workspace_id = str(uuid.uuid4())
        body = json.dumps({"id": workspace_id, "delivery_mode": "poll"})

        def register_it(body: str = body) -> tuple[int, dict]:
            response = Client(raise_request_exception=False).post(
                "/registry/register", body, content_type="application/json"
            )
            return response.status_code, response.json()

        answers = sorted(run_together(register_it, 2), key=lambda answer: answer[0])

        assert [status for status, _ in answers] == [200, 401], answers
        assert answers[0][1]["auth_token"]
        assert "auth_token" not in answers[1][1]
        assert answers[1][1]["error"]
        assert run_sql("SELECT count(*) FROM workspaces WHERE id = %s", [workspace_id]) == [(1,)]
