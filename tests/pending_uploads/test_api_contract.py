"""Upstream's contract for uploads: file lifetime, raced acks, caps and /uploads/limits, paging."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from molecule.models import ActivityLog
from pending_uploads import conf
from pending_uploads.models import PendingUpload
from pending_uploads.services import uploads_sweep
from tests.helpers import (
    RegisteredWorkspace,
    assert_json_error,
    body_of,
    current_database_url,
    run_sql,
)
from tests.integration.conftest import HANG_TIMEOUT, wait_until
from tests.pending_uploads.test_api import (
    BOUNDARY,
    ack,
    closed,
    fetch,
    file_id_of,
    post_raw,
    raw_part,
    upload,
)

# Every test runs twice: file bytes in PostgreSQL, and in a bucket on the test S3 server.
pytestmark = pytest.mark.usefixtures("storage_mode")

MIB = 1024 * 1024


def text_file(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="text/plain")


@pytest.mark.django_db
def test_an_acked_file_is_served_until_the_sweep_then_404(api, poll_workspace):
    ws = poll_workspace
    file_id = file_id_of(upload(api, ws, [text_file("a.txt", b"bytes")]).json()["files"][0])

    first_ack = ack(api, ws, file_id)
    # Read each body now: a download streams, and the sweep below would cut a lazy one short.
    served = [(r.status_code, body_of(r)) for r in (fetch(api, ws, file_id) for _ in range(2))]
    re_ack = ack(api, ws, file_id)
    listed = api.get(ws.url("pending-uploads"), **ws.auth).json()
    uploads_sweep(ack_retention=timedelta(0))
    after_sweep = [fetch(api, ws, file_id), ack(api, ws, file_id)]

    assert first_ack.content == re_ack.content == b'{"acked":true}'
    assert served == [(200, b"bytes")] * 2
    assert listed == []
    for response in after_sweep:
        assert_json_error(response, 404)


@pytest.mark.django_db
def test_an_acked_but_expired_file_is_404(api, poll_workspace):
    ws = poll_workspace
    file_id = file_id_of(upload(api, ws, [text_file("a.txt", b"x")]).json()["files"][0])
    ack(api, ws, file_id)
    PendingUpload.objects.filter(pk=file_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert_json_error(fetch(api, ws, file_id), 404)
    assert_json_error(ack(api, ws, file_id), 404)


LOCK_WAITS_SQL = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE %s
"""


def _wait_for_lock_wait(query_fragment: str) -> None:
    """Until a statement of this database containing ``query_fragment`` waits on a lock."""
    wait_until(
        lambda: run_sql(LOCK_WAITS_SQL, [f"%{query_fragment}%"])[0][0],
        timeout=HANG_TIMEOUT,
        interval=0.02,
        what="the ack to wait on the sweep's lock",
    )


@pytest.mark.parametrize(
    ("sweep_outcome", "answer"),
    [
        ("commit", b'{"acked":true,"raced":true}'),
        ("rollback", b'{"acked":true}'),
    ],
)
def test_an_ack_racing_the_sweep(transactional_db, register, sweep_outcome, answer):
    # A second connection plays the sweep: it deletes the row and holds the lock while the
    # ack, started afterwards, waits on it. The ack's snapshot saw the row unacked.
    ws: RegisteredWorkspace = register("racer", "poll")
    file_id = file_id_of(upload(Client(), ws, [text_file("r.txt", b"r")]).json()["files"][0])
    responses = []

    def ack_in_a_thread() -> None:
        try:
            responses.append(ack(Client(), ws, file_id))
        finally:
            connection.close()

    with psycopg.connect(current_database_url()) as sweeper:
        sweeper.execute("DELETE FROM pending_uploads WHERE file_id = %s", [file_id])
        thread = threading.Thread(target=ack_in_a_thread)
        thread.start()
        try:
            _wait_for_lock_wait("COALESCE(acked_at")
        finally:
            getattr(sweeper, sweep_outcome)()
            thread.join(30)

    [response] = responses
    assert (response.status_code, response.content) == (200, answer)
    stamped = PendingUpload.objects.filter(pk=file_id, acked_at__isnull=False).exists()
    assert stamped is (sweep_outcome == "rollback")


# --- Caps --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_limits_publish_the_caps_without_auth(api):
    response = api.get("/uploads/limits")

    # The request cap is the per-file cap plus 1 MiB for the multipart envelope, so a file of
    # exactly per_file_bytes fits in a request.
    assert response.content == (
        b'{"per_file_bytes":104857600,"per_request_bytes":105906176,'
        b'"max_attachments_per_message":10}'
    )
    assert conf.max_request_bytes() == conf.max_file_bytes() + conf.MULTIPART_ENVELOPE_BYTES


@pytest.mark.django_db
@override_settings(PENDING_UPLOADS_MAX_FILE_BYTES=4000)
def test_the_default_request_cap_follows_the_file_cap(api):
    limits = api.get("/uploads/limits").json()

    assert (limits["per_file_bytes"], limits["per_request_bytes"]) == (4000, 4000 + 1024 * 1024)


def padded_request(size: int) -> bytes:
    """A 3000-byte file, then an ignored form field padding the whole body to ``size`` bytes."""
    file_part = raw_part('filename="a.bin"', b"x" * 3000)
    field = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'.encode()
    fixed = len(field) + 2 + len(closed(file_part))
    data = closed(field + b"p" * (size - fixed) + b"\r\n", file_part)
    assert len(data) == size
    return data


def one_file(size: int) -> bytes:
    """A body of one file of ``size`` bytes."""
    return closed(raw_part('filename="a.bin"', b"x" * size))


# Each published cap, limits that make it the one a request meets first, and a request of a
# given size under that cap: the whole body, or its one file.
PUBLISHED_CAPS = {
    "per_request_bytes": (
        {"PENDING_UPLOADS_MAX_FILE_BYTES": 4000, "PENDING_UPLOADS_MAX_REQUEST_BYTES": 5000},
        padded_request,
    ),
    "per_file_bytes": (
        {"PENDING_UPLOADS_MAX_FILE_BYTES": 4000, "PENDING_UPLOADS_MAX_REQUEST_BYTES": 50_000},
        one_file,
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("over", [0, 1])
@pytest.mark.parametrize("cap_name", PUBLISHED_CAPS)
def test_a_published_cap_is_the_enforced_one(api, poll_workspace, cap_name, over):
    limits, request_of = PUBLISHED_CAPS[cap_name]
    with override_settings(**limits):
        cap = api.get("/uploads/limits").json()[cap_name]
        response = post_raw(api, poll_workspace, request_of(cap + over))

    if over:
        assert_json_error(response, 413)
        assert PendingUpload.objects.count() == 0
    else:
        assert response.status_code == 200, response.content
        assert PendingUpload.objects.count() == 1


# --- Upload activity rows and the paged list ---------------------------------------------------


@pytest.mark.django_db
def test_upload_activity_rows_are_canvas_rows_addressed_to_the_workspace(api, poll_workspace):
    ws = poll_workspace
    upload(api, ws, [text_file("a.txt", b"x")])

    [row] = api.get(ws.url("activity"), {"type": "a2a_receive"}, **ws.auth).json()

    assert (row["source_id"], row["target_id"], row["status"], row["method"]) == (
        None,
        str(ws.id),
        "ok",
        "chat_upload_receive",
    )
    assert ActivityLog.objects.get().target_id == ws.id


@pytest.mark.django_db
def test_the_list_pages_oldest_first_with_after(api, poll_workspace):
    ws = poll_workspace
    upload(api, ws, [text_file(f"{n}.txt", b"x") for n in range(7)])
    upload(api, ws, [text_file("later.txt", b"x")])

    names, after, pages = [], None, 0
    while True:
        query = {"limit": 3, **({"after": after} if after else {})}
        page = api.get(ws.url("pending-uploads"), query, **ws.auth).json()
        if not page:
            break
        pages += 1
        names += [row["name"] for row in page]
        after = page[-1]["file_id"]
        # Acking what was read does not disturb the next page.
        ack(api, ws, after)

    assert names == [f"{n}.txt" for n in range(7)] + ["later.txt"]
    assert pages == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"limit": "0"}, 400),
        ({"limit": "x"}, 400),
        ({"limit": "-3"}, 400),
        ({"after": "not-a-uuid"}, 400),
        ({"after": str(uuid.uuid4())}, 410),
    ],
)
def test_the_list_refuses_bad_paging(api, poll_workspace, query, status):
    assert_json_error(
        api.get(poll_workspace.url("pending-uploads"), query, **poll_workspace.auth), status
    )


@pytest.mark.django_db
def test_the_list_defaults_to_100_and_clamps_to_500(api, poll_workspace):
    ws = poll_workspace
    PendingUpload.objects.bulk_create(
        PendingUpload(workspace_id=ws.id, content=b"x", size_bytes=1, filename=f"{n}.txt")
        for n in range(501)
    )

    default = api.get(ws.url("pending-uploads"), **ws.auth).json()
    clamped = api.get(ws.url("pending-uploads"), {"limit": 10**9}, **ws.auth).json()

    assert (len(default), len(clamped)) == (100, 500)
