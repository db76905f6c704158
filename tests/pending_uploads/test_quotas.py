"""The upload path's quotas: files per window and bytes stored, exact when uploads race."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from molecule.models import ActivityLog, WorkspaceUsage
from pending_uploads import quotas as upload_quotas
from pending_uploads.models import PendingUpload
from tests.helpers import RegisteredWorkspace, assert_json_error, run_together

pytestmark = pytest.mark.django_db


def upload(api: Client, ws: RegisteredWorkspace, *sizes: int) -> object:
    files = [SimpleUploadedFile(f"f{n}.bin", b"u" * size) for n, size in enumerate(sizes)]
    return api.post(ws.url("chat/uploads"), {"files": files}, **ws.auth)


def stored(ws: RegisteredWorkspace) -> tuple[int, int]:
    """(pending_uploads rows, activity_logs rows) of the workspace."""
    return (
        PendingUpload.objects.filter(workspace_id=ws.id).count(),
        ActivityLog.objects.filter(workspace_id=ws.id).count(),
    )


def uploads_counted(ws: RegisteredWorkspace) -> int:
    return WorkspaceUsage.objects.current(ws.id, "uploads", window=timedelta(hours=1)).amount


@override_settings(QUOTA_UPLOADS=3)
def test_files_past_the_window_quota_are_refused_whole(api: Client, poll_workspace) -> None:
    assert upload(api, poll_workspace, 10, 10).status_code == 200

    refused = upload(api, poll_workspace, 10, 10)

    body = assert_json_error(refused, 429)
    assert (body["quota"], body["limit"], body["window_seconds"]) == ("uploads", 3, 3600)
    assert refused["Retry-After"] == str(body["retry_after"])
    assert stored(poll_workspace) == (2, 2)
    assert uploads_counted(poll_workspace) == 2
    assert upload(api, poll_workspace, 10).status_code == 200
    assert assert_json_error(upload(api, poll_workspace, 10), 429)["quota"] == "uploads"


@override_settings(QUOTA_PENDING_BYTES=1000)
def test_stored_bytes_past_the_quota_are_refused_by_content_length(
    api: Client, poll_workspace
) -> None:
    assert upload(api, poll_workspace, 600).status_code == 200

    refused = upload(api, poll_workspace, 300)

    body = assert_json_error(refused, 429)
    assert (body["quota"], body["limit"], body["retry_after"]) == ("pending_bytes", 1000, 300)
    assert refused["Retry-After"] == "300"
    assert stored(poll_workspace) == (1, 1)


@override_settings(QUOTA_PENDING_BYTES=1000)
def test_stored_bytes_are_checked_again_after_the_write(
    api: Client, poll_workspace, monkeypatch
) -> None:
    # Without the pre-check, the count inside the transaction refuses, and rolls back.
    monkeypatch.setattr(upload_quotas, "uploads_precheck", lambda **kwargs: None)
    assert upload(api, poll_workspace, 600, 400).status_code == 200

    refused = upload(api, poll_workspace, 1)

    assert assert_json_error(refused, 429)["quota"] == "pending_bytes"
    assert stored(poll_workspace) == (2, 2)
    assert uploads_counted(poll_workspace) == 2


@override_settings(QUOTA_PENDING_BYTES=1000)
def test_acked_and_expired_rows_count_until_the_sweep_deletes_them(
    api: Client, poll_workspace
) -> None:
    assert upload(api, poll_workspace, 500).status_code == 200
    PendingUpload.objects.update(acked_at="2000-01-01T00:00Z", expires_at="2000-01-02T00:00Z")

    assert assert_json_error(upload(api, poll_workspace, 600), 429)["quota"] == "pending_bytes"
    PendingUpload.objects.all().delete()
    assert upload(api, poll_workspace, 600).status_code == 200


RACERS = 12


@pytest.mark.django_db(transaction=True)
@override_settings(QUOTA_UPLOADS=5)
def test_racing_uploads_of_one_workspace_store_exactly_the_file_quota(register) -> None:
    ws = register()

    statuses = run_together(lambda: upload(Client(), ws, 100).status_code, RACERS)

    assert sorted(statuses) == [200] * 5 + [429] * (RACERS - 5)
    assert stored(ws) == (5, 5)
    assert uploads_counted(ws) == 5


@pytest.mark.django_db(transaction=True)
@override_settings(QUOTA_PENDING_BYTES=5 * 1000)
def test_racing_uploads_of_one_workspace_store_exactly_the_byte_quota(register) -> None:
    ws = register()

    statuses = run_together(lambda: upload(Client(), ws, 1000).status_code, RACERS)

    assert sorted(statuses) == [200] * 5 + [429] * (RACERS - 5)
    assert stored(ws) == (5, 5)
    assert PendingUpload.objects.stored_bytes(ws.id) == 5000
