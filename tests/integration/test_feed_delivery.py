"""The activity feed under concurrent writers: a since_id poller gets every row exactly once.

Long writers are uploads whose bytes take a while to store; short writers are activity
reports that start later and commit first. Under the old (created_at, id) order the poller
moved past a short row while an upload's rows were still uncommitted behind it, and never
saw them. Both tests run the same traffic: in this process with committed transactions, and
against gunicorn with real worker processes.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.files.uploadedfile import UploadedFile
from django.db import connection
from django.test import Client

from devtools.processes import ServiceStack
from molecule.services.activity import activity_append
from pending_uploads.services import uploads_receive
from tests.helpers import RegisteredWorkspace, current_database_url, run_sql, service_stack
from tests.integration.conftest import tables_truncate

# Bounded in time and in count, so a stuck thread fails the test instead of hanging it.
TRAFFIC_SECONDS = 4.0
MAX_WRITES = 2_000
JOIN_TIMEOUT = 60.0
# Pauses between one thread's requests: enough for the others to interleave.
SHORT_WRITER_PAUSE = 0.01
POLL_PAUSE = 0.02
# In-process uploads: three files, each taking this long to read, so the upload's transaction
# stays open ~0.5 s with its first file stored while the short writers commit.
FILES_PER_UPLOAD = 3
SLOW_READ_SECONDS = 0.15
# Through gunicorn: files large enough that storing them takes a noticeable time.
SERVED_FILE_BYTES = 4 * 1024 * 1024
BOUNDARY = "feed-delivery-boundary"

ROWS_OF_WORKSPACE_SQL = "SELECT id FROM activity_logs WHERE workspace_id = %s AND id > %s"


class Stop(threading.Event):
    """Set when the traffic should end, or when a thread failed."""


@dataclass
class Traffic:
    """Writer threads running until stopped; their first error fails the test."""

    stop: Stop = field(default_factory=Stop)
    errors: list[BaseException] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    writes: dict[str, int] = field(default_factory=dict)

    def loop(
        self, name: str, write: Callable[[int], None], pause: float = 0.0, times: int = MAX_WRITES
    ) -> None:
        def body() -> None:
            try:
                for number in range(times):
                    if self.stop.is_set():
                        return
                    write(number)
                    self.writes[name] = number + 1
                    time.sleep(pause)
            except BaseException as exc:
                self.errors.append(exc)
                self.stop.set()
            finally:
                # Each thread opened its own connection; leave none behind for the flush.
                connection.close()

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
            assert not thread.is_alive(), f"{thread.name} did not finish"
        if self.errors:
            raise self.errors[0]


@dataclass
class Poller:
    """The runtime's loop: GET ?since_id=<last id seen>, oldest first, until told to stop."""

    fetch: Callable[[int], list[dict[str, Any]]]
    cursor: int
    delivered: list[int] = field(default_factory=list)
    polls: int = 0

    def poll(self) -> int:
        rows = self.fetch(self.cursor)
        self.polls += 1
        if rows:
            self.delivered += [row["id"] for row in rows]
            self.cursor = rows[-1]["id"]
        return len(rows)

    def follow(self, traffic: Traffic, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not traffic.stop.is_set():
            self.poll()
            time.sleep(POLL_PAUSE)
        traffic.finish()
        # Everything is committed now: what the poller has not seen yet must come next.
        while self.poll():
            pass


def assert_delivered_exactly_once(poller: Poller, workspace_id: uuid.UUID, start: int) -> None:
    written = [row_id for (row_id,) in run_sql(ROWS_OF_WORKSPACE_SQL, [workspace_id, start])]
    missed = sorted(set(written) - set(poller.delivered))
    assert not missed, f"{len(missed)} of {len(written)} rows never delivered: {missed[:20]}"
    assert len(poller.delivered) == len(set(poller.delivered)), "a row was delivered twice"
    assert poller.delivered == sorted(written), "rows were delivered out of order"


class SlowFile(io.BytesIO):
    """File bytes that arrive slowly, as a large file's do while it is stored."""

    def read(self, size: int | None = -1) -> bytes:
        time.sleep(SLOW_READ_SECONDS)
        return super().read(size)


def slow_upload(number: int) -> list[UploadedFile]:
    return [
        UploadedFile(
            SlowFile(b"x" * 1000),
            name=f"u{number}-{part}.bin",
            content_type="application/octet-stream",
            size=1000,
        )
        for part in range(FILES_PER_UPLOAD)
    ]


@pytest.mark.django_db(transaction=True)
def test_uploads_beside_short_writers_reach_a_since_id_poller_exactly_once(register) -> None:
    ws: RegisteredWorkspace = register("poller", "poll")
    start = activity_append(workspace_id=ws.id, activity_type="a2a_receive").id
    client = Client()

    def fetch(cursor: int) -> list[dict[str, Any]]:
        response = client.get(ws.url("activity"), {"since_id": str(cursor)}, **ws.auth)
        assert response.status_code == 200, response.content
        return response.json()

    traffic = Traffic()
    for uploader in range(2):
        traffic.loop(
            f"uploader-{uploader}",
            lambda n: uploads_receive(workspace=ws.workspace, files=slow_upload(n)),
        )
    for writer in range(2):
        traffic.loop(
            f"reporter-{writer}",
            lambda n: activity_append(workspace_id=ws.id, activity_type="a2a_receive"),
            SHORT_WRITER_PAUSE,
        )
    poller = Poller(fetch, start)

    poller.follow(traffic, TRAFFIC_SECONDS)

    assert traffic.writes["uploader-0"] >= 2 and traffic.writes["reporter-0"] >= 10, traffic.writes
    assert_delivered_exactly_once(poller, ws.id, start)


INSERT_ACTIVITY_SQL = (
    "INSERT INTO activity_logs (workspace_id, activity_type) VALUES (%s, 'agent_log') RETURNING id"
)


@pytest.mark.django_db(transaction=True)
def test_an_open_writer_holds_up_only_the_later_writers_of_its_own_workspace(register) -> None:
    ws, other = register("busy"), register("other")
    url = current_database_url()
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as probe:
        # An activity row inserted and left uncommitted (idle in transaction).
        (held,) = holder.execute(INSERT_ACTIVITY_SQL, [ws.id]).fetchone()
        probe.execute("SET lock_timeout = '300ms'")

        probe.execute(INSERT_ACTIVITY_SQL, [other.id])
        with pytest.raises(psycopg.errors.LockNotAvailable):
            probe.execute(INSERT_ACTIVITY_SQL, [ws.id])
        # Readers never wait: the feed answers at once, without the uncommitted row.
        answer = Client().get(ws.url("activity"), **ws.auth)
        assert answer.status_code == 200
        assert held not in [row["id"] for row in answer.json()]

        holder.commit()
        (later,) = probe.execute(INSERT_ACTIVITY_SQL, [ws.id]).fetchone()

    assert later > held


@pytest.mark.django_db(transaction=True)
def test_an_upload_holds_up_its_workspaces_writers_only_after_its_bytes(register) -> None:
    ws = register("uploader")
    reading, release = threading.Event(), threading.Event()

    class GatedFile(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reading.set()
            assert release.wait(JOIN_TIMEOUT)
            return super().read(size)

    traffic = Traffic()
    gated = UploadedFile(GatedFile(b"g" * 10), name="g.bin", content_type="text/plain", size=10)
    traffic.loop(
        "uploader", lambda n: uploads_receive(workspace=ws.workspace, files=[gated]), times=1
    )
    assert reading.wait(JOIN_TIMEOUT)
    # The upload's transaction is open, its bytes still arriving: other writers go through.
    with psycopg.connect(current_database_url(), autocommit=True) as probe:
        probe.execute("SET lock_timeout = '2s'")
        (reported,) = probe.execute(INSERT_ACTIVITY_SQL, [ws.id]).fetchone()
    release.set()
    traffic.finish()

    ((upload_row,),) = run_sql(
        "SELECT id FROM activity_logs WHERE workspace_id = %s AND method = 'chat_upload_receive'",
        [ws.id],
    )
    assert upload_row > reported


# --- the same traffic through gunicorn ------------------------------------------------------


@dataclass
class Served:
    stack: ServiceStack
    workspace_id: uuid.UUID
    auth: dict[str, str]

    def call(self, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={**self.auth, **headers})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        assert response.status == 200, (method, path, response.status, data[:300])
        return json.loads(data)

    def activity(self, suffix: str = "") -> str:
        return f"/workspaces/{self.workspace_id}/activity{suffix}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """gunicorn with two workers, and one poll-mode workspace registered through it."""
    stack = service_stack(tmp_path, web_workers=2)
    tables_truncate()
    stack.start(qcluster=False)
    try:
        workspace_id = uuid.uuid4()
        registration = {"id": str(workspace_id), "delivery_mode": "poll", "agent_card": {}}
        registered = Served(stack, workspace_id, {}).call(
            "POST",
            "/registry/register",
            json.dumps(registration).encode(),
            **{"Content-Type": "application/json"},
        )
        yield Served(stack, workspace_id, {"Authorization": f"Bearer {registered['auth_token']}"})
    finally:
        stack.stop()
        tables_truncate()


def multipart_body(count: int, size: int) -> bytes:
    parts = [
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="f{number}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + os.urandom(size)
        + b"\r\n"
        for number in range(count)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_uploads_beside_short_writers_through_gunicorn_reach_the_poller_exactly_once(
    served: Served,
) -> None:
    report = json.dumps({"activity_type": "a2a_receive", "method": "message/send"}).encode()
    json_type = {"Content-Type": "application/json"}
    served.call("POST", served.activity(), report, **json_type)
    ((start,),) = run_sql("SELECT max(id) FROM activity_logs")
    body = multipart_body(FILES_PER_UPLOAD, SERVED_FILE_BYTES)
    upload_type = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    upload_path = f"/workspaces/{served.workspace_id}/chat/uploads"

    traffic = Traffic()
    for uploader in range(2):
        traffic.loop(
            f"uploader-{uploader}",
            lambda n: served.call("POST", upload_path, body, **upload_type),
        )
    for writer in range(2):
        traffic.loop(
            f"reporter-{writer}",
            lambda n: served.call("POST", served.activity(), report, **json_type),
            SHORT_WRITER_PAUSE,
        )
    poller = Poller(lambda after: served.call("GET", served.activity(f"?since_id={after}")), start)

    poller.follow(traffic, TRAFFIC_SECONDS * 1.5)

    assert traffic.writes["uploader-0"] >= 2 and traffic.writes["reporter-0"] >= 10, traffic.writes
    assert_delivered_exactly_once(poller, served.workspace_id, start)
