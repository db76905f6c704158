"""Per-workspace quotas: windowed charges, level checks, the 429 answer, and the usage table."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client, override_settings

from molecule import quotas
from molecule.models import ActivityLog, WorkspaceUsage
from tests.helpers import (
    RegisteredWorkspace,
    assert_json_error,
    assert_metric_delta,
    metrics_saved,
    run_sql,
    run_together,
)

REFUSALS = "molecule_quota_refusals_total"
WS = uuid.UUID("00000000-0000-4000-8000-000000000001")

pytestmark = pytest.mark.django_db


def charge(amount: int, quota: quotas.Quota = quotas.UPLOADS) -> None:
    with transaction.atomic():
        quotas.quota_charge(workspace_id=WS, quota=quota, amount=amount)


def used(quota: quotas.Quota = quotas.UPLOADS, workspace_id: uuid.UUID = WS) -> int:
    return WorkspaceUsage.objects.current(
        workspace_id, quota.name, window=timedelta(hours=1)
    ).amount


def test_the_defaults_are_far_above_an_agents_use() -> None:
    assert quotas.PENDING_BYTES.limit() == 5 * 1024**3
    assert quotas.ACTIVITY_BYTES.limit() == 256 * 1024**2
    assert quotas.UPLOADS.limit() == 1000


@override_settings(QUOTA_UPLOADS=5)
def test_charges_add_up_to_the_limit_and_the_next_is_refused_and_rolled_back() -> None:
    before = metrics_saved()
    charge(3)
    charge(2)

    with pytest.raises(quotas.QuotaExceeded) as refused:
        charge(1)

    assert used() == 5
    assert refused.value.details() == {
        "quota": "uploads",
        "limit": 5,
        "window_seconds": 3600,
        "retry_after": refused.value.retry_after,
    }
    assert 1 <= refused.value.retry_after <= 3600
    assert str(refused.value).startswith("quota exceeded: at most 5 uploaded files per 3600 s")
    assert_metric_delta(before, 1, REFUSALS, quota="uploads")
    assert_metric_delta(before, 0, REFUSALS, quota="activity_bytes")


@override_settings(QUOTA_UPLOADS=5)
def test_workspaces_and_quotas_count_apart() -> None:
    charge(5)
    charge(5, quotas.ACTIVITY_BYTES)
    with transaction.atomic():
        quotas.quota_charge(workspace_id=uuid.uuid4(), quota=quotas.UPLOADS, amount=5)

    assert (used(), used(quotas.ACTIVITY_BYTES)) == (5, 5)


@override_settings(QUOTA_UPLOADS=0, QUOTA_WINDOW=timedelta(minutes=10))
def test_a_zero_limit_switches_the_quota_off_and_the_window_is_a_setting() -> None:
    charge(10**9)
    quotas.quota_precheck(workspace_id=WS, quota=quotas.UPLOADS, amount=10**9)

    assert used() == 0
    with override_settings(QUOTA_UPLOADS=1), pytest.raises(quotas.QuotaExceeded) as refused:
        charge(2)
    assert refused.value.window_seconds == 600
    assert refused.value.retry_after <= 600


@pytest.mark.django_db(transaction=True)
def test_a_charge_outside_a_transaction_is_a_programming_error() -> None:
    with pytest.raises(AssertionError, match="inside the write's transaction"):
        quotas.quota_charge(workspace_id=WS, quota=quotas.UPLOADS, amount=1)


@override_settings(QUOTA_UPLOADS=5)
def test_the_precheck_refuses_what_cannot_fit_without_charging() -> None:
    charge(4)
    quotas.quota_precheck(workspace_id=WS, quota=quotas.UPLOADS, amount=1)

    with pytest.raises(quotas.QuotaExceeded):
        quotas.quota_precheck(workspace_id=WS, quota=quotas.UPLOADS, amount=2)

    assert used() == 4


@override_settings(QUOTA_PENDING_BYTES=100)
def test_a_level_check_counts_under_the_lock_and_refuses_past_the_limit() -> None:
    before = metrics_saved()
    with transaction.atomic():
        quotas.quota_check_level(
            workspace_id=WS, quota=quotas.PENDING_BYTES, level=lambda: 100, retry_after=300
        )
        locks = run_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )[0][0]
    assert locks == 1

    with pytest.raises(quotas.QuotaExceeded) as refused:
        quotas.quota_check_level(
            workspace_id=WS,
            quota=quotas.PENDING_BYTES,
            level=lambda: 90,
            adding=11,
            retry_after=299.2,
            locked=False,
        )
    assert refused.value.details() == {"quota": "pending_bytes", "limit": 100, "retry_after": 300}
    assert "per workspace" in str(refused.value)
    assert_metric_delta(before, 1, REFUSALS, quota="pending_bytes")
    with override_settings(QUOTA_PENDING_BYTES=0):
        quotas.quota_check_level(
            workspace_id=WS, quota=quotas.PENDING_BYTES, level=lambda: 10**12, retry_after=1
        )


def test_ended_windows_are_pruned() -> None:
    charge(1)
    charge(1, quotas.ACTIVITY_BYTES)
    WorkspaceUsage.objects.create(
        workspace_id=WS, quota="uploads", window_start="2000-01-01T00:00Z", amount=9
    )
    # The last window that ended; the current one started at most an hour ago.
    run_sql(
        "INSERT INTO workspace_usage (workspace_id, quota, window_start, amount) "
        "VALUES (%s, 'uploads', now() - interval '61 minutes', 9)",
        [WS],
    )

    assert quotas.quota_windows_prune() == 2
    assert quotas.quota_windows_prune() == 0
    assert sorted(
        WorkspaceUsage.objects.filter(workspace_id=WS).values_list("quota", "amount")
    ) == [
        ("activity_bytes", 1),
        ("uploads", 1),
    ]


# --- POST /workspaces/<id>/activity ---------------------------------------------------------


def report(api: Client, ws: RegisteredWorkspace, summary: str = "x") -> object:
    body = json.dumps({"activity_type": "agent_log", "summary": summary})
    return api.post(ws.url("activity"), body, content_type="application/json", **ws.auth)


def body_size(summary: str = "x") -> int:
    return len(json.dumps({"activity_type": "agent_log", "summary": summary}))


def test_activity_bodies_count_into_the_window(api: Client, poll_workspace) -> None:
    assert report(api, poll_workspace).status_code == 200
    assert report(api, poll_workspace, "y" * 100).status_code == 200

    assert used(quotas.ACTIVITY_BYTES, poll_workspace.id) == body_size() + body_size("y" * 100)


def test_activity_past_the_quota_is_429_with_retry_after_and_not_stored(
    api: Client, poll_workspace
) -> None:
    with override_settings(QUOTA_ACTIVITY_BYTES=2 * body_size()):
        assert report(api, poll_workspace).status_code == 200
        assert report(api, poll_workspace).status_code == 200
        # Fits by Content-Length only after the charge: refused by the charge, rolled back.
        refused = report(api, poll_workspace, "")

    body = assert_json_error(refused, 429)
    assert body["quota"] == "activity_bytes"
    assert body["limit"] == 2 * body_size()
    assert body["window_seconds"] == 3600
    assert refused["Retry-After"] == str(body["retry_after"])
    assert "quota exceeded" in body["error"]
    assert ActivityLog.objects.filter(workspace_id=poll_workspace.id).count() == 2
    assert used(quotas.ACTIVITY_BYTES, poll_workspace.id) == 2 * body_size()


def test_activity_is_refused_by_content_length_before_the_body_is_read(
    api: Client, poll_workspace, monkeypatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the body was read")

    monkeypatch.setattr("molecule.views.activity.json_object", never)
    with override_settings(QUOTA_ACTIVITY_BYTES=body_size() - 1):
        refused = report(api, poll_workspace)

    assert assert_json_error(refused, 429)["quota"] == "activity_bytes"


@pytest.mark.django_db(transaction=True)
@override_settings(QUOTA_ACTIVITY_BYTES=5 * body_size())
def test_racing_reports_of_one_workspace_store_exactly_the_quota(register) -> None:
    ws = register()

    statuses = run_together(lambda: report(Client(), ws).status_code, 16)

    assert sorted(statuses) == [200] * 5 + [429] * 11
    assert ActivityLog.objects.filter(workspace_id=ws.id).count() == 5
    assert used(quotas.ACTIVITY_BYTES, ws.id) == 5 * body_size()
