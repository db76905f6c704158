"""Uploads to push-mode workspaces, forwarded to a stand-in workspace on 127.0.0.1.

MOLECULE_ENV=development throughout (loopback is allowed only there), except where a test
says otherwise; names resolve through the resolver fixture, so nothing leaves the machine.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory, override_settings

from devtools.processes.nginx import self_signed_certificate
from devtools.processes.workspace import Received, StandInWorkspace
from molecule.models import Workspace
from pending_uploads import views
from pending_uploads.forward import INGEST_PATH, SLOTS, WorkspaceUnreachable
from pending_uploads.metrics import FORWARD_OUTCOMES
from tests.helpers import (
    RegisteredWorkspace,
    assert_metric_delta,
    assert_metric_deltas,
    body_of,
    metrics_saved,
    run_sql,
)

pytestmark = pytest.mark.django_db

BOUNDARY = "push-test-boundary"
FORWARDS = "molecule_chat_upload_forwards_total"
DURATIONS = "molecule_chat_upload_forward_duration_seconds_count"
MIB = 1024 * 1024


def multipart(content: bytes, filename: str = "greeting.txt") -> bytes:
    disposition = f'form-data; name="files"; filename="{filename}"'
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def post(api: Client, ws: RegisteredWorkspace, body: bytes, **headers: str) -> Any:
    return api.generic(
        "POST",
        ws.url("chat/uploads"),
        data=body,
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        **ws.auth,
        **headers,
    )


def table_counts() -> tuple[int, int]:
    return run_sql(
        "SELECT (SELECT count(*) FROM pending_uploads), (SELECT count(*) FROM activity_logs)"
    )[0]


def outcomes(**counted: int) -> dict[str, float]:
    return {outcome: counted.get(outcome, 0) for outcome in FORWARD_OUTCOMES}


@pytest.fixture(autouse=True)
def development() -> Iterator[None]:
    with override_settings(MOLECULE_ENV="development"):
        yield
    # Every forward gave its slot back, whatever the test did.
    assert SLOTS.in_flight == 0


@pytest.fixture
def pusher(register) -> RegisteredWorkspace:
    return register("pusher", "push")


@pytest.fixture
def stand_in(pusher: RegisteredWorkspace) -> Iterator[StandInWorkspace]:
    """The pusher's workspace, checking the secret its registration returned."""
    with StandInWorkspace(secret=pusher.inbound_secret) as workspace:
        Workspace.objects.filter(pk=pusher.id).update(url=workspace.url)
        yield workspace


def only(stand_in: StandInWorkspace) -> Received:
    assert stand_in.wait_for(lambda ws: len(ws.received) >= 1, timeout=10)
    (received,) = stand_in.received
    return received


# --- the forward ------------------------------------------------------------------------------


def test_a_small_upload_arrives_as_sent_with_the_secret(api, pusher, stand_in) -> None:
    body = multipart(b"e2e fixture content\n")
    before = table_counts()

    response = post(
        api, pusher, body, HTTP_X_FORWARDED_FOR="10.9.9.9", HTTP_COOKIE="a=b", HTTP_X_TRACE="t"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    answer = json.loads(body_of(response))
    received = only(stand_in)
    assert (received.method, received.path) == ("POST", INGEST_PATH)
    assert received.complete and received.authorized
    assert received.body == body
    assert answer == {"received": len(body), "sha256": received.sha256}
    assert received.header("Authorization") == f"Bearer {pusher.inbound_secret}"
    assert received.header("Content-Type") == f"multipart/form-data; boundary={BOUNDARY}"
    assert received.header("Content-Length") == str(len(body))
    # Nothing else of the caller's: no bearer token of its own, cookie or forwarding header.
    names = {name.lower() for name, _ in received.headers}
    assert names <= {"host", "accept-encoding", "authorization", "content-type", "content-length"}
    assert pusher.token not in str(received.headers)
    # Push mode stores nothing.
    assert table_counts() == before


def test_a_body_of_several_chunks_arrives_byte_for_byte(api, pusher, stand_in) -> None:
    content = bytes(range(256)) * (5 * MIB // 256) + b"tail"
    body = multipart(content, "big.bin")

    response = post(api, pusher, body)

    assert response.status_code == 200
    received = only(stand_in)
    assert json.loads(body_of(response)) == {"received": len(body), "sha256": received.sha256}
    assert received.size == len(body)


def test_the_ingest_path_follows_the_registered_path_without_trailing_slashes(
    api, pusher, stand_in
) -> None:
    Workspace.objects.filter(pk=pusher.id).update(url=f"{stand_in.url}/base//")

    body_of(post(api, pusher, multipart(b"x")))

    assert only(stand_in).path == f"/base{INGEST_PATH}"


def test_a_host_name_is_resolved_checked_and_sent_as_host(api, pusher, stand_in, resolver) -> None:
    resolver["workspace.test"] = [["127.0.0.1"]]
    Workspace.objects.filter(pk=pusher.id).update(url=f"http://workspace.test:{stand_in.port}")

    response = post(api, pusher, multipart(b"x"))

    assert response.status_code == 200
    body_of(response)
    assert only(stand_in).header("Host") == f"workspace.test:{stand_in.port}"


ANSWERS = {
    "413-text": (413, [("Content-Type", "text/plain")], b"too big for me"),
    "500-json": (500, [("Content-Type", "application/json")], b'{"error":"failed to write"}'),
    "401-unauthorized": (401, [("Content-Type", "application/json")], b'{"error":"nope"}'),
    "201-no-type": (201, [], b"created"),
    "302-redirect": (
        302,
        [("Location", "http://169.254.169.254/latest"), ("Content-Type", "text/html")],
        b"<a>moved</a>",
    ),
    "404-html": (404, [("Content-Type", "text/html; charset=utf-8")], b"<p>no route</p>"),
}


@pytest.mark.parametrize(("status", "headers", "content"), ANSWERS.values(), ids=ANSWERS.keys())
def test_the_workspace_answer_passes_through(
    api, pusher, stand_in, status, headers, content
) -> None:
    stand_in.reply = lambda received: (status, [*headers, ("X-Workspace", "1")], content)
    saved = metrics_saved()

    response = post(api, pusher, multipart(b"x"))

    assert response.status_code == status
    assert body_of(response) == content
    assert response.get("Content-Type") == dict(headers).get("Content-Type")
    # Only its Content-Type comes back: a 3xx is relayed without its Location, never followed.
    assert not response.has_header("Location")
    assert not response.has_header("X-Workspace")
    assert response["Content-Security-Policy"] == views.ATTACHMENT_CSP
    assert only(stand_in).complete
    ok = 200 <= status < 300
    assert_metric_deltas(
        saved, FORWARDS, "outcome", outcomes(ok=int(ok), workspace_error=int(not ok))
    )


def test_a_wrong_secret_gets_the_workspaces_401(api, pusher, stand_in) -> None:
    stand_in.secret = "not-the-secret"
    # Large enough that the workspace closes while the forward is still sending.
    body = multipart(b"z" * (8 * MIB))

    response = post(api, pusher, body)

    assert response.status_code == 401
    assert json.loads(body_of(response)) == {"error": "unauthorized"}
    assert not only(stand_in).authorized


def test_a_refused_connection_is_502(api, pusher) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    Workspace.objects.filter(pk=pusher.id).update(url=f"http://127.0.0.1:{port}")
    saved = metrics_saved()

    response = post(api, pusher, multipart(b"x"))

    assert response.status_code == 502
    assert response.json() == {"error": "workspace unreachable"}
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(unreachable=1))
    assert_metric_delta(saved, 1, DURATIONS)


def test_a_workspace_too_slow_for_the_forward_timeout_is_502(api, pusher, stand_in) -> None:
    stand_in.read_delay = 5
    with override_settings(PENDING_UPLOADS_FORWARD_TIMEOUT=timedelta(seconds=0.5)):
        response = post(api, pusher, multipart(b"s" * (8 * MIB)))

    assert response.status_code == 502
    assert response.json() == {"error": "workspace unreachable"}
    stand_in.release()
    assert not only(stand_in).complete


def test_https_is_verified_against_the_host_name(
    api, pusher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    with StandInWorkspace(secret=pusher.inbound_secret, tls=(cert, key)) as workspace:
        Workspace.objects.filter(pk=pusher.id).update(url=f"https://localhost:{workspace.port}")
        untrusted = post(api, pusher, multipart(b"x"))
        # The system's trust store, with the stand-in's certificate in it.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        trusted = post(api, pusher, multipart(b"x"))

        assert untrusted.status_code == 502
        assert trusted.status_code == 200
        assert json.loads(body_of(trusted))["received"] > 0
        assert [received.complete for received in workspace.received] == [True]


def test_a_poll_workspace_with_a_url_still_stores(api, register, stand_in) -> None:
    poller = register("poller", "poll", url=stand_in.url)

    response = post(api, poller, multipart(b"kept here"))

    assert response.status_code == 200
    assert response.json()["files"][0]["uri"].startswith("platform-pending:")
    assert stand_in.received == []
    assert table_counts() == (1, 1)


def test_a_body_over_the_cap_is_413_before_any_connection(api, pusher, stand_in) -> None:
    body = multipart(b"x" * 100)

    with override_settings(PENDING_UPLOADS_MAX_REQUEST_BYTES=len(body) - 1):
        response = post(api, pusher, body)

    assert response.status_code == 413
    assert response.json() == {"error": "request body too large", "max": len(body) - 1}
    assert stand_in.received == []


# --- what is refused before the forward ---------------------------------------------------


def test_a_push_workspace_without_a_url_is_503(api, pusher) -> None:
    Workspace.objects.filter(pk=pusher.id).update(url=None)

    response = post(api, pusher, multipart(b"x"))

    assert response.status_code == 503
    assert response.json() == {"error": "workspace url not registered yet"}


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        # Loopback is allowed in development only.
        ({"MOLECULE_ENV": ""}, None),
        ({"MOLECULE_ENV": "production", "MOLECULE_DEPLOY_MODE": "saas"}, None),
        ({}, "http://169.254.169.254/latest"),
        ({}, "http://[::ffff:169.254.169.254]/"),
        ({}, "http://[fe80::1]:8000/"),
        ({}, "http://nowhere.test/"),
    ],
    ids=["self-hosted", "saas", "metadata", "mapped-metadata", "link-local-v6", "unresolvable"],
)
def test_a_stored_url_the_guard_refuses_is_400_and_never_dialled(
    api, pusher, stand_in, resolver, settings, url
) -> None:
    if url is not None:
        Workspace.objects.filter(pk=pusher.id).update(url=url)
    saved = metrics_saved()

    with override_settings(**settings):
        response = post(api, pusher, multipart(b"x"))

    assert_refused_undialled(response, 400, "workspace URL not allowed", stand_in, saved)


def test_a_name_that_rebinds_to_a_refused_address_is_never_dialled(
    api, pusher, stand_in, resolver
) -> None:
    # Checked as loopback (allowed here), then it answers the metadata address at dial time.
    resolver["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    Workspace.objects.filter(pk=pusher.id).update(url=f"http://rebind.test:{stand_in.port}")
    saved = metrics_saved()

    response = post(api, pusher, multipart(b"x"))

    assert_refused_undialled(response, 502, "workspace unreachable", stand_in, saved)


def assert_refused_undialled(
    response: Any, status: int, error: str, stand_in: StandInWorkspace, saved: list
) -> None:
    """The address guard refused the forward: nothing reached the workspace, and it counted."""
    assert response.status_code == status
    assert response.json() == {"error": error}
    assert stand_in.received == []
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(refused=1))


def test_without_a_usable_secret_the_forward_waits_for_the_next_heartbeat(
    api, pusher, stand_in
) -> None:
    Workspace.objects.filter(pk=pusher.id).update(platform_inbound_secret_sealed=None)

    refused = post(api, pusher, multipart(b"x"))
    beat = api.post(
        "/registry/heartbeat",
        data=json.dumps({"workspace_id": str(pusher.id)}),
        content_type="application/json",
        **pusher.auth,
    )
    stand_in.secret = beat.json()["platform_inbound_secret"]
    healed = post(api, pusher, multipart(b"x"))

    assert refused.status_code == 503
    assert "platform_inbound_secret" in refused.json()["error"]
    assert stand_in.secret != pusher.inbound_secret
    assert healed.status_code == 200
    assert only(stand_in).header("Authorization") == f"Bearer {stand_in.secret}"
    body_of(healed)


def test_a_rotated_secret_key_keeps_forwards_working(api, register, settings_key_rotation) -> None:
    old_key, new_key = settings_key_rotation
    with override_settings(SECRET_KEY=old_key, SECRET_KEY_FALLBACKS=[]):
        pusher = register("rotating", "push")
    with StandInWorkspace(secret=pusher.inbound_secret) as workspace:
        Workspace.objects.filter(pk=pusher.id).update(url=workspace.url)

        with override_settings(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[old_key]):
            rotated = post(api, pusher, multipart(b"x"))
            body_of(rotated)
        with override_settings(SECRET_KEY=new_key, SECRET_KEY_FALLBACKS=[]):
            dropped = post(api, pusher, multipart(b"x"))

    assert rotated.status_code == 200
    # The old key gone before a registration resealed the secret: it is unusable, and says so.
    assert dropped.status_code == 503
    assert len(workspace.received) == 1


@pytest.fixture
def settings_key_rotation() -> tuple[str, str]:
    return "old-secret-key-" + "o" * 40, "new-secret-key-" + "n" * 40


def test_the_secret_never_reaches_a_log(api, pusher, stand_in, caplog) -> None:
    caplog.set_level("DEBUG")
    body_of(post(api, pusher, multipart(b"x")))
    stand_in.secret = "other"
    body_of(post(api, pusher, multipart(b"x")))
    Workspace.objects.filter(pk=pusher.id).update(url="http://127.0.0.1:9")
    post(api, pusher, multipart(b"x"))

    assert "chat upload forwarded" in caplog.text
    assert pusher.inbound_secret not in caplog.text
    sealed = Workspace.objects.get(pk=pusher.id).platform_inbound_secret_sealed
    assert sealed not in caplog.text


# --- capacity -------------------------------------------------------------------------------


def test_past_the_cap_a_forward_is_503_with_retry_after(api, pusher, stand_in) -> None:
    saved = metrics_saved()
    assert SLOTS.acquire()
    try:
        with override_settings(PENDING_UPLOADS_FORWARD_MAX_CONCURRENT=1):
            busy = post(api, pusher, multipart(b"x"))
    finally:
        SLOTS.release()

    assert busy.status_code == 503
    assert busy.json() == {
        "error": "too many uploads to workspaces in flight, retry later",
        "retry_after_seconds": views.FORWARD_BUSY_RETRY_AFTER,
    }
    assert busy["Retry-After"] == str(views.FORWARD_BUSY_RETRY_AFTER)
    assert stand_in.received == []
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(busy=1))


# --- bodies that are not what they claim, and clients that go away -------------------------


class BrokenInput(io.BytesIO):
    """A client body that stops after its first bytes: at EOF, or with a reset."""

    def __init__(self, data: bytes, *, reset: bool) -> None:
        super().__init__(data)
        self.reset = reset

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        if not chunk and self.reset:
            raise ConnectionResetError(104, "Connection reset by peer")
        return chunk


def call_view(ws: RegisteredWorkspace, body: Any, length: int | None) -> Any:
    """The upload view on a raw WSGI request: ``body`` as wsgi.input, ``length`` declared.

    Without a length the body is chunked, as gunicorn passes one on (wsgi.input_terminated).
    """
    environ: dict[str, Any] = {
        "wsgi.input": body,
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
    }
    if length is None:
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(length)
    request = RequestFactory().generic("POST", ws.url("chat/uploads"), **ws.auth, **environ)
    return views.upload(request, workspace_id=str(ws.id))


@pytest.mark.parametrize("reset", [False, True], ids=["eof", "reset"])
def test_a_client_that_goes_away_mid_body_cancels_the_forward(pusher, stand_in, reset) -> None:
    sent = multipart(b"p" * (2 * MIB))
    saved = metrics_saved()

    response = call_view(pusher, BrokenInput(sent[:MIB], reset=reset), len(sent))

    assert response.status_code == 400
    # The workspace saw its connection end before the body did, and answered nothing.
    received = only(stand_in)
    assert not received.complete
    assert 0 < received.size < len(sent)
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(cancelled=1))


def test_a_client_that_goes_away_mid_answer_closes_the_workspace_connection(
    pusher, stand_in
) -> None:
    stand_in.reply = lambda received: (200, [("Content-Type", "text/plain")], b"a" * (16 * MIB))
    body = multipart(b"x")
    saved = metrics_saved()

    response = call_view(pusher, io.BytesIO(body), len(body))
    first = next(iter(response.streaming_content))
    # What the WSGI server does when the client is gone: close the response.
    response.close()

    assert first
    assert stand_in.wait_for(lambda ws: ws.received, timeout=10)
    assert not only(stand_in).answered
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(cancelled=1))


def test_a_chunked_body_is_forwarded_chunked(pusher, stand_in) -> None:
    body = multipart(b"c" * (MIB + 7))

    response = call_view(pusher, io.BytesIO(body), None)
    answer = json.loads(b"".join(response.streaming_content))
    response.close()

    received = only(stand_in)
    assert received.header("Transfer-Encoding") == "chunked"
    assert received.header("Content-Length") is None
    assert answer == {"received": len(body), "sha256": received.sha256}


def test_a_chunked_body_past_the_cap_is_413_and_the_forward_stops(pusher, stand_in) -> None:
    body = multipart(b"c" * (MIB + 7))

    with override_settings(PENDING_UPLOADS_MAX_REQUEST_BYTES=MIB):
        response = call_view(pusher, io.BytesIO(body), None)

    assert response.status_code == 413
    received = only(stand_in)
    assert not received.complete
    assert received.size <= MIB


def test_a_forward_observes_its_duration(api, pusher, stand_in) -> None:
    saved = metrics_saved()

    body_of(post(api, pusher, multipart(b"x")))

    assert_metric_delta(saved, 1, DURATIONS)
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(ok=1))


class GreedyInput(io.BytesIO):
    """A server input that hands back more than asked for: past Content-Length."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(-1 if size is None or size < 0 else size * 2)


def test_more_bytes_than_declared_stop_the_forward(pusher, stand_in) -> None:
    body = multipart(b"g" * MIB)

    response = call_view(pusher, GreedyInput(body + b"smuggled" * 1000), len(body))

    assert response.status_code == 413
    assert not only(stand_in).complete


def test_an_informational_status_in_place_of_the_answer_is_502(api, pusher, stand_in) -> None:
    stand_in.reply = lambda received: (103, [("Link", "</a.css>; rel=preload")], b"")

    response = post(api, pusher, multipart(b"x"))

    assert response.status_code == 502
    assert response.json() == {"error": "workspace unreachable"}


def test_an_answer_that_breaks_off_is_never_passed_off_as_whole(api, pusher) -> None:
    # A workspace that promises 100 bytes, sends 5 and closes.
    with socket.create_server(("127.0.0.1", 0)) as server:
        Workspace.objects.filter(pk=pusher.id).update(
            url=f"http://127.0.0.1:{server.getsockname()[1]}"
        )

        def answer_short() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")

        threading.Thread(target=answer_short, daemon=True).start()
        saved = metrics_saved()
        response = post(api, pusher, multipart(b"x"))

        assert response.status_code == 200
        with pytest.raises(WorkspaceUnreachable, match="answer broke off"):
            body_of(response)
    assert_metric_deltas(saved, FORWARDS, "outcome", outcomes(unreachable=1))
