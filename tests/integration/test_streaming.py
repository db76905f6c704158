"""Large files through a real gunicorn worker, with the bytes in PostgreSQL and in a bucket: a
file of exactly the per-file cap (100 MiB) up and back in bounded worker memory, a sweep
mid-download, a client that hangs up mid-download. One upload of that file per storage mode,
at the default caps, is shared by every case."""

from __future__ import annotations

import http.client
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from devtools.processes import ServiceStack, process_reset_peak, process_rss_bytes
from pending_uploads.conf import DEFAULT_MAX_FILE_BYTES
from pending_uploads.managers import CHUNK_BYTES
from tests.helpers import bucket_create, bucket_remove, current_database_url, service_stack
from tests.integration.conftest import tables_truncate, wait_until

# The django_db mark makes pytest-django create the test database even when this module runs
# alone; the rows themselves are committed by gunicorn, outside the test transaction.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

MIB = 1024 * 1024
BOUNDARY = "streaming-test-boundary"
# The worker's peak RSS may grow this much over its warm baseline while it receives or serves
# the 100 MiB file: the bench's goal. Measured: 4-5 MiB in PostgreSQL mode, 10 MiB up (one
# 8 MiB part) and 2 MiB down in bucket mode.
MAX_GROWTH = 32 * MIB
# What the service's own connections look like in pg_stat_activity while nothing is served.
BUSY_BACKENDS_SQL = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND (state LIKE 'idle in transaction%%' OR state = 'active')
"""
# A second row with the same bytes (or the same object), copied inside the server (the race
# test deletes it).
COPY_ROW_SQL = """
INSERT INTO pending_uploads (workspace_id, content, storage_key, size_bytes, filename, mimetype)
SELECT workspace_id, content, storage_key, size_bytes, 'race.bin', mimetype FROM pending_uploads
 WHERE file_id = %s
RETURNING file_id
"""


@dataclass
class Served:
    stack: ServiceStack
    workspace_id: uuid.UUID
    auth: dict[str, str]
    file_id: uuid.UUID
    content: bytes
    mode: str
    # The worker's peak RSS growth over its warm baseline while it received the upload.
    upload_growth: int

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=60)

    def content_path(self, file_id: uuid.UUID) -> str:
        return f"/workspaces/{self.workspace_id}/pending-uploads/{file_id}/content"

    def worker_pid(self) -> int:
        (pid,) = self.stack.pids()["gunicorn_workers"]
        return pid


def _call(served_port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", served_port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    assert response.status == 200, data[:500]
    return json.loads(data)


@pytest.fixture(scope="module", params=["postgres", "s3"])
def served(
    request: pytest.FixtureRequest,
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """One gthread gunicorn worker holding one upload of exactly the default per-file cap, in
    PostgreSQL or in a bucket."""
    workdir = tmp_path_factory.mktemp("streaming")
    extra_env = {}
    if request.param == "s3":
        request.getfixturevalue("s3_server")
        extra_env["PENDING_UPLOADS_S3_BUCKET"] = bucket = bucket_create()
    stack = service_stack(workdir, web_workers=1, extra_env=extra_env)
    with django_db_blocker.unblock():
        tables_truncate()
        stack.start(qcluster=False)
        try:
            workspace_id = uuid.uuid4()
            registration = {"id": str(workspace_id), "delivery_mode": "poll", "agent_card": {}}
            answer = _call(
                stack.port,
                "POST",
                "/registry/register",
                json.dumps(registration).encode(),
                {"Content-Type": "application/json"},
            )
            auth = {"Authorization": f"Bearer {answer['auth_token']}"}
            per_file_bytes = _call(stack.port, "GET", "/uploads/limits", b"", {})["per_file_bytes"]
            assert per_file_bytes == DEFAULT_MAX_FILE_BYTES
            headers = {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
            path = f"/workspaces/{workspace_id}/chat/uploads"
            # Warm the worker (imports, the database connection, boto3's client) first.
            warm = _call(stack.port, "POST", path, _multipart(b"warm-up" * 100), headers)
            _fetch_and_ack(stack.port, warm, auth)
            # The published cap itself: the request cap leaves room for the multipart envelope.
            content = os.urandom(per_file_bytes)
            body = _multipart(content)
            (worker,) = stack.pids()["gunicorn_workers"]
            process_reset_peak(worker)
            baseline = process_rss_bytes(worker)
            files = _call(stack.port, "POST", path, body, headers)
            upload_growth = process_rss_bytes(worker, "VmHWM") - baseline
            del body
            file_id = uuid.UUID(files["files"][0]["uri"].rsplit("/", 1)[1])
            yield Served(stack, workspace_id, auth, file_id, content, request.param, upload_growth)
        finally:
            stack.stop()
            tables_truncate()
            if request.param == "s3":
                bucket_remove(bucket)


def _multipart(content: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files";'
        ' filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    return head + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def _fetch_and_ack(port: int, files: dict[str, Any], auth: dict[str, str]) -> None:
    """GET the first file of an upload answer back, then ack it (off the list)."""
    workspace_id, file_id = files["files"][0]["uri"].split(":", 1)[1].split("/")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        path = f"/workspaces/{workspace_id}/pending-uploads/{file_id}"
        conn.request("GET", f"{path}/content", headers=auth)
        conn.getresponse().read()
        conn.request("POST", f"{path}/ack", headers=auth)
        conn.getresponse().read()
    finally:
        conn.close()


def busy_backends() -> int:
    with psycopg.connect(current_database_url(), autocommit=True) as conn:
        return conn.execute(BUSY_BACKENDS_SQL).fetchone()[0]


def test_a_file_of_the_per_file_cap_comes_back_byte_for_byte_in_bounded_memory(
    served: Served,
) -> None:
    worker = served.worker_pid()
    process_reset_peak(worker)
    baseline = process_rss_bytes(worker)
    conn = served.connection()
    try:
        conn.request("GET", served.content_path(served.file_id), headers=served.auth)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    fetch_growth = process_rss_bytes(worker, "VmHWM") - baseline
    assert response.status == 200
    assert response.getheader("Content-Length") == str(DEFAULT_MAX_FILE_BYTES)
    assert response.getheader("Content-Disposition") == (
        "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin"
    )
    assert data == served.content
    growth = f"{served.upload_growth / MIB:.1f} MiB up, {fetch_growth / MIB:.1f} MiB down"
    assert max(served.upload_growth, fetch_growth) < MAX_GROWTH, growth


def test_a_client_that_hangs_up_mid_download_leaves_nothing_open(served: Served) -> None:
    worker = served.worker_pid()
    request = (
        f"GET {served.content_path(served.file_id)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {served.auth['Authorization']}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", served.stack.port), timeout=60) as client:
        client.sendall(request)
        received = b""
        while len(received) < CHUNK_BYTES:
            received += client.recv(CHUNK_BYTES)
        assert received.startswith(b"HTTP/1.1 200 ")
    # Hung up with about 98 MiB still to send.

    # The worker notices on a later write, drops the download and holds no transaction.
    wait_until(lambda: busy_backends() == 0, timeout=20, what="the worker's backend to go idle")
    again = served.connection()
    try:
        again.request(
            "GET", f"/workspaces/{served.workspace_id}/pending-uploads", headers=served.auth
        )
        listed = again.getresponse()
        assert listed.status == 200
        assert [row["file_id"] for row in json.loads(listed.read())] == [str(served.file_id)]
    finally:
        again.close()
    assert served.worker_pid() == worker
    assert busy_backends() == 0


def test_a_sweep_mid_download_ends_the_body_short_never_wrong(served: Served) -> None:
    with psycopg.connect(current_database_url(), autocommit=True) as sweeper:
        (race_id,) = sweeper.execute(COPY_ROW_SQL, [served.file_id]).fetchone()
        conn = served.connection()
        try:
            conn.request("GET", served.content_path(race_id), headers=served.auth)
            response = conn.getresponse()
            assert response.status == 200
            received = response.read(CHUNK_BYTES)
            # The sweep deletes the row (and commits) while the worker is still streaming it.
            sweeper.execute("DELETE FROM pending_uploads WHERE file_id = %s", [race_id])
            try:
                received += response.read()
            except http.client.IncompleteRead as short:
                received += short.partial
        finally:
            conn.close()
    assert received == served.content[: len(received)]
    if served.mode == "postgres":
        # Each chunk is its own statement: the next one finds no row.
        assert len(received) < int(response.getheader("Content-Length"))
    # A bucket GET already under way keeps reading the object it opened (which the outbox
    # would delete only after the row's delete committed): complete, or short, never wrong.
    wait_until(lambda: busy_backends() == 0, timeout=20, what="the worker's backend to go idle")
