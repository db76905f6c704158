"""The pending-uploads admin's plans on a realistically sized table: indexes, never scans."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from pending_uploads.models import PendingUpload
from tests.helpers import run_sql
from tests.pending_uploads.test_admin import (
    CHANGELIST,
    has_count,
    pending_upload_selects,
    rows_read_from_pending_uploads,
)

pytestmark = pytest.mark.django_db


PLAN_ROWS = 50_000
PLAN_WORKSPACES = 500


@pytest.fixture(scope="module")
def plan_table(django_db_setup: None, django_db_blocker: Any) -> Iterator[uuid.UUID]:
    """50k rows over 500 workspaces (100 each, a tenth acked), analyzed; yields a workspace.

    Built and committed once for this module, whose tests only read the table: each one's
    own writes (its admin login) roll back as usual.
    """
    with django_db_blocker.unblock():
        run_sql(
            """
            INSERT INTO pending_uploads (workspace_id, content, size_bytes, filename, mimetype,
                                         created_at, acked_at)
            SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(mod(n, %s)), 12, '0'))::uuid,
                   '\\x00'::bytea, 1, 'scan-' || n || '.pdf', 'application/pdf',
                   now() - n * interval '1 second',
                   CASE WHEN mod(n, 10) = 0 THEN now() END
              FROM generate_series(1, %s) AS n
            """,
            [PLAN_WORKSPACES, PLAN_ROWS],
        )
        run_sql("ANALYZE pending_uploads")
    yield uuid.UUID("00000000-0000-4000-8000-000000000007")
    # ANALYZE writes pg_class.reltuples in place: analyze the emptied table again, so later
    # tests see no phantom estimate.
    with django_db_blocker.unblock():
        run_sql("DELETE FROM pending_uploads")
        run_sql("ANALYZE pending_uploads")


def plan_of(sql: str) -> list[dict]:
    """Every node of the plan of ``sql``, executed (EXPLAIN ANALYZE)."""
    ((plan,),) = run_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
    document = json.loads(plan) if isinstance(plan, str) else plan
    nodes, pending = [], [document[0]["Plan"]]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending.extend(node.get("Plans", []))
    return nodes


def page_query(captured: CaptureQueriesContext) -> str:
    """The changelist's page of rows (the SELECT that orders them)."""
    (sql,) = [
        sql
        for sql in pending_upload_selects(captured)
        if "ORDER BY" in sql and not has_count(sql) and "MIN(" not in sql
    ]
    return sql


@pytest.mark.parametrize("arm", ["workspace", "file"])
def test_uuid_search_uses_the_primary_key_and_the_workspace_index(
    admin_client: Client, plan_table: uuid.UUID, arm: str
) -> None:
    key = plan_table
    if arm == "file":
        key = PendingUpload.objects.filter(workspace_id=plan_table).values_list("pk", flat=True)[0]
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST, {"q": str(key)})
    expected = PLAN_ROWS // PLAN_WORKSPACES if arm == "workspace" else 1
    assert len(response.context["cl"].result_list) == expected
    for sql in pending_upload_selects(captured):
        if "file_id" not in sql or "reltuples" in sql or "MIN(" in sql:
            continue
        nodes = plan_of(sql)
        indexes = {node.get("Index Name") for node in nodes}
        assert {"pending_uploads_pkey", "pending_uploads_ws_created_idx"} <= indexes, sql
        assert not any(node["Node Type"] == "Seq Scan" for node in nodes), sql
        # Today's plan walked pending_uploads_created_idx and filtered "file_id = X OR ...".
        assert "pending_uploads_created_idx" not in indexes, sql
        read = sum(
            node["Actual Rows"] * node["Actual Loops"]
            for node in nodes
            if node.get("Relation Name") == "pending_uploads"
        )
        assert read <= 3 * expected + 10, (read, sql)


def test_filename_word_search_uses_the_words_index(
    admin_client: Client, plan_table: uuid.UUID
) -> None:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST, {"q": "scan-4242"})
    assert [row.filename for row in response.context["cl"].result_list] == ["scan-4242.pdf"]
    nodes = plan_of(page_query(captured))
    assert "pending_uploads_words_idx" in {node.get("Index Name") for node in nodes}
    assert not any(node["Node Type"] == "Seq Scan" for node in nodes)


@pytest.mark.parametrize(
    "params", [{"q": "nosuchword"}, {"state": "expired"}, {"q": "scan", "state": "acked"}]
)
def test_date_hierarchy_reads_periods_off_the_index_whatever_the_filter(
    admin_client: Client, plan_table: uuid.UUID, params: dict[str, str]
) -> None:
    """Django's MIN/MAX of a filtered list walks created_idx through every non-match."""
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    assert 'class="toplinks"' in response.content.decode()
    bounds = [sql for sql in pending_upload_selects(captured) if "MIN(" in sql]
    assert bounds
    for sql in bounds:
        read = rows_read_from_pending_uploads(sql)
        assert read <= 10, (read, sql)


# Rows that expired at one instant: an operator's UPDATE, or uploads whose TTL ran out together.
TIE_EXPIRY_SQL = """
UPDATE pending_uploads SET expires_at = now() - interval '30 minutes'
 WHERE acked_at IS NULL AND mod(hashtext(filename), 4) <> 0
"""


def test_expired_filter_pages_rows_of_one_expires_at_off_the_expiry_index(
    admin_client: Client, plan_table: uuid.UUID
) -> None:
    """Newest first by (expires_at, file_id): an index of expires_at alone sorts every tie."""
    run_sql(TIE_EXPIRY_SQL)
    run_sql("ANALYZE pending_uploads")
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(CHANGELIST, {"state": "expired"})
    page = response.context["cl"].result_list
    assert len(page) == 100
    assert [row.file_id for row in page] == sorted((row.file_id for row in page), reverse=True)

    sql = page_query(captured)
    nodes = plan_of(sql)
    assert "pending_uploads_expiry_idx" in {node.get("Index Name") for node in nodes}, sql
    assert not any("Sort" in node["Node Type"] for node in nodes), sql
    assert rows_read_from_pending_uploads(sql) <= 100, sql
