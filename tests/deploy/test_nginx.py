"""Debian's nginx with deploy/nginx/molecule-uploads.conf in front of real gunicorn.

The config is rendered for loopback ports, this stack and a throwaway certificate, nothing else.
Each attack of the penetration test (issue 19) is sent as it was, and the answer checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from django.contrib.auth.hashers import make_password

from devtools.processes import ServiceStack, free_port
from devtools.processes.nginx import NginxProxy, client_tls_context, nginx_binary, site_conn_limit
from devtools.processes.slow_clients import (
    SlowDownload,
    SlowUpload,
    connect,
    response_read,
    source_address,
    upload_file,
)
from pending_uploads import conf
from tests.helpers import current_database_url, service_stack
from tests.integration.conftest import tables_truncate, wait_until
from tests.integration.test_faults import http as http_json
from tests.integration.test_faults import register_body

# The django_db mark makes pytest-django create the test database even when this module runs
# alone; the rows themselves are committed by gunicorn, and truncated when the module ends.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

HOST = "uploads.test"
# The shipped limit: 1 request at once plus a burst of 10 (rate 6/min refills one per 10 s).
REGISTER_BURST_ALLOWED = 11
# A bound on the wait, not a target: with one gunicorn thread an unbuffered upload or download
# blocks it, and the penetration test's polls then timed out at 5 s.
POLL_TIMEOUT = 10.0
MIB = 1024 * 1024
BUFFERED_UPLOAD_BYTES = 8 * MIB
ADMIN_TOKEN = "operator-" + "t" * 40
# The app's JSON cap for this stack, below nginx's 1 MiB, so the app's own 413 can be seen.
APP_JSON_CAP = 64 * 1024
# The shipped per-address limits (limit_conn): downloads in progress, upload bodies held.
DOWNLOADS_PER_ADDRESS = site_conn_limit("molecule_downloads")
BODIES_PER_ADDRESS = site_conn_limit("molecule_upload_bodies")
# The penetration test's 32-64 slow readers, at the top: 4 addresses at the limit each.
SLOW_READERS = 64
# More than the loopback buffers between gunicorn and a stalled reader hold (8 MiB was enough
# to block the one gunicorn thread here before nginx buffered downloads; 6 MiB was not).
READER_FILE_BYTES = 12 * MIB
# The memory nginx may grow by with every slow reader connected: its buffers and TLS state
# (0.2-0.3 MiB a reader measured), where holding the files would take 768 MiB.
READERS_NGINX_GROWTH_BOUND = 64 * MIB


@dataclass
class Proxied:
    stack: ServiceStack
    proxy: NginxProxy
    tls: ssl.SSLContext

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = None,
        source: str = "",
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request through nginx over TLS, with the public Host name."""
        headers = {"Host": HOST, "Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPSConnection(
            "127.0.0.1",
            self.proxy.tls_port,
            context=self.tls,
            timeout=timeout,
            source_address=(source, 0) if source else None,
        )
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.headers), response.read()
        finally:
            conn.close()

    def exchange(
        self, data: bytes, *, source: str = ""
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Send ``data`` as it is to the public server, over TLS."""
        return exchange(self.proxy.tls_port, data, tls=self.tls, source=source)

    def exchange_directly(self, data: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        """The same bytes to gunicorn, past nginx: what the app itself answers."""
        return exchange(self.stack.port, data)

    def upload(self, workspace_id: str, token: str, size: int, *, source: str = "") -> SlowUpload:
        """An upload through nginx whose body the test sends (``send``, ``finish``)."""
        return SlowUpload(
            self.proxy.tls_port,
            host=HOST,
            workspace_id=workspace_id,
            token=token,
            size=size,
            tls=self.tls,
            source=source,
        )

    def download(
        self, workspace_id: str, token: str, file_id: str, *, source: str = ""
    ) -> SlowDownload:
        """A download through nginx whose answer the test reads (``status``, ``read``)."""
        return SlowDownload(
            self.proxy.tls_port,
            host=HOST,
            workspace_id=workspace_id,
            token=token,
            file_id=file_id,
            tls=self.tls,
            source=source,
        )

    def upload_directly(self, workspace_id: str, token: str, size: int) -> str:
        """Store one file of ``size`` bytes past nginx; its file id."""
        return upload_file(
            self.stack.port, host=HOST, workspace_id=workspace_id, token=token, size=size
        )

    def register_directly(self) -> tuple[str, str]:
        """Register past nginx, so that setup never spends the rate limit's budget."""
        workspace_id = uuid.uuid4()
        status, _, body = http_json(
            "POST", self.stack.url("/registry/register"), body=register_body(workspace_id)
        )
        assert status == 200, body
        return str(workspace_id), body["auth_token"]


def exchange(
    port: int, data: bytes, *, tls: ssl.SSLContext | None = None, source: str = ""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One raw request; (status, headers with repeats kept, body)."""
    with contextlib.closing(connect(port, tls=tls, source=source)) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)  # type: ignore[arg-type]
        response.begin()
        return response.status, response.headers, response.read()


def request_head(method: str, path: str, *lines: str) -> bytes:
    """A request's head with the public Host, ``Connection: close`` and ``lines``."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", *lines, "Connection: close"]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def proxied(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxied]:
    """nginx in front of gunicorn with ONE worker of ONE thread, so nothing hides a stall."""
    if nginx_binary() is None or shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("nginx or openssl is not installed, but CI is set; .ci/run installs them")
        pytest.skip("nginx or openssl is not installed (Debian's nginx and openssl packages)")
    workdir = tmp_path_factory.mktemp("nginx")
    with django_db_blocker.unblock():
        stack = service_stack(
            workdir,
            web_workers=1,
            extra_env={
                "GUNICORN_THREADS": "1",
                "ALLOWED_HOSTS": f"127.0.0.1,{HOST}",
                # Django sends HSTS only on a request it sees as secure: X-Forwarded-Proto.
                "SECURE_HSTS_SECONDS": "60",
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "MOLECULE_MAX_JSON_BYTES": str(APP_JSON_CAP),
            },
        )
        proxy = NginxProxy(f"127.0.0.1:{stack.port}", root=workdir / "nginx")
        try:
            stack.start(qcluster=False)
            proxy.start()
            yield Proxied(stack, proxy, client_tls_context(proxy.cert))
        finally:
            proxy.stop()
            stack.stop()
            tables_truncate()


def test_registration_burst_gets_429_while_other_traffic_passes(proxied: Proxied) -> None:
    workspace_id, token = proxied.register_directly()

    burst = [proxied.request("POST", "/registry/register", body=register_body()) for _ in range(25)]

    statuses = [status for status, _, _ in burst]
    assert statuses[:REGISTER_BURST_ALLOWED] == [200] * REGISTER_BURST_ALLOWED
    # At most one more slot refills while the burst runs.
    assert statuses.count(429) >= len(burst) - REGISTER_BURST_ALLOWED - 1
    assert set(statuses) == {200, 429}
    _, headers, body = burst[-1]
    assert json.loads(body) == {"error": "too many registrations from this address, retry later"}
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "10"
    # Still inside the limit's window: other methods, paths and addresses pass.
    assert proxied.request("GET", "/registry/register")[0] == 405
    assert proxied.request("GET", f"/workspaces/{workspace_id}/activity", token=token)[0] == 200
    heartbeat = {"workspace_id": workspace_id, "active_tasks": 0, "current_task": ""}
    assert proxied.request("POST", "/registry/heartbeat", body=heartbeat, token=token)[0] == 200
    other_address = proxied.request(
        "POST", "/registry/register", body=register_body(), source="127.0.0.2"
    )
    assert other_address[0] == 200
    assert proxied.request("POST", "/registry/register", body=register_body())[0] == 429


def test_forwarded_proto_and_host_reach_django(proxied: Proxied) -> None:
    status, headers, _ = proxied.exchange(request_head("GET", "/uploads/limits"))
    # 200 rather than 400: Django saw the public Host (ALLOWED_HOSTS), not the upstream's name.
    assert status == 200
    # Django sends HSTS only on a request it sees as secure; nginx then sends none of its own.
    assert headers.get_all("Strict-Transport-Security") == ["max-age=60; includeSubDomains"]

    status, headers, _ = http_direct(proxied.stack.port, "/uploads/limits")
    assert status == 200
    assert "Strict-Transport-Security" not in headers

    plain = http.client.HTTPConnection("127.0.0.1", proxied.proxy.plain_port, timeout=10)
    plain.request("GET", "/uploads/limits?x=1", headers={"Host": HOST})
    redirect = plain.getresponse()
    assert redirect.status == 301
    assert redirect.getheader("Location") == f"https://{HOST}/uploads/limits?x=1"
    plain.close()


def http_direct(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def test_a_large_upload_and_its_download_pass_through_nginx(proxied: Proxied) -> None:
    workspace_id, token = proxied.register_directly()
    upload = proxied.upload(workspace_id, token, BUFFERED_UPLOAD_BYTES)
    upload.send(BUFFERED_UPLOAD_BYTES // 4)

    # gunicorn's only thread is free: nginx holds the unfinished body.
    poll = proxied.request(
        "GET", f"/workspaces/{workspace_id}/activity", token=token, timeout=POLL_TIMEOUT
    )
    assert poll[0] == 200

    status, answer = upload.finish()
    assert status == 200, answer
    (stored,) = answer["files"]
    assert stored["size"] == BUFFERED_UPLOAD_BYTES
    file_id = stored["uri"].rsplit("/", 1)[-1]
    status, _, content = proxied.request(
        "GET", f"/workspaces/{workspace_id}/pending-uploads/{file_id}/content", token=token
    )
    assert status == 200
    assert hashlib.sha256(content).digest() == hashlib.sha256(b"s" * BUFFERED_UPLOAD_BYTES).digest()


def test_body_over_the_proxy_cap_gets_413_json_from_nginx(proxied: Proxied) -> None:
    workspace_id, token = proxied.register_directly()
    sock = connect(proxied.proxy.tls_port, tls=proxied.tls)
    head = (
        f"POST /workspaces/{workspace_id}/chat/uploads HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {conf.max_request_bytes() + 1}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode())

    status, headers, body = response_read(sock)
    sock.close()
    assert status == 413
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "request body too large"}


# --- 1. Slow readers -------------------------------------------------------------------------


def test_slow_readers_hold_no_gunicorn_thread(proxied: Proxied) -> None:
    # The penetration test: 32-64 downloads read slowly froze every poll (gunicorn's threads
    # were each writing to one). Here gunicorn has ONE thread, and 64 readers read nothing.
    workspace_id, token = proxied.register_directly()
    file_id = proxied.upload_directly(workspace_id, token, READER_FILE_BYTES)
    rss_before = proxied.proxy.workers_rss_bytes()
    readers: list[SlowDownload] = []

    def reader(source: str) -> SlowDownload:
        download = proxied.download(workspace_id, token, file_id, source=source)
        readers.append(download)
        return download

    try:
        statuses = [
            reader(source_address(number, DOWNLOADS_PER_ADDRESS)).status()
            for number in range(SLOW_READERS)
        ]
        one_more = reader(source_address(0, DOWNLOADS_PER_ADDRESS))
        polls = [
            proxied.request(
                "GET", f"/workspaces/{workspace_id}/activity", token=token, timeout=POLL_TIMEOUT
            )[0]
            for _ in range(5)
        ]
        spooled = proxied.proxy.temp_file_bytes("proxy")
        rss_growth = proxied.proxy.workers_rss_bytes() - rss_before
        refused = response_read(one_more.sock)
    finally:
        for download in readers:
            download.close()

    assert statuses == [200] * SLOW_READERS
    assert polls == [200] * 5
    # The files wait in nginx's temporary files (proxy_temp_path), not in its memory.
    assert spooled > SLOW_READERS * READER_FILE_BYTES // 2
    assert rss_growth < READERS_NGINX_GROWTH_BOUND
    status, headers, body = refused
    assert status == 429
    assert headers["Content-Type"] == "application/json"
    assert headers["Retry-After"] == "10"
    assert json.loads(body) == {
        "error": "too many requests in progress from this address, retry later"
    }


# --- 2. Bodies without a valid token ---------------------------------------------------------

# (route under the workspace, credentials, declared body size): each refused from its head.
UNAUTHENTICATED_BODIES = {
    "upload without a token": ("chat/uploads", "none", 100 * MIB),
    "upload with a wrong token": ("chat/uploads", "wrong", 100 * MIB),
    "upload with another workspace's token": ("chat/uploads", "other", 100 * MIB),
    "upload to a malformed workspace id": ("chat/uploads", "malformed-id", 100 * MIB),
    "body to no such route": ("no-such-route", "none", 1 * MIB),
    "activity report without a token": ("activity", "none", 1 * MIB),
}


@pytest.mark.parametrize("case", list(UNAUTHENTICATED_BODIES))
def test_a_body_without_a_valid_token_is_refused_before_it_is_read(
    proxied: Proxied, case: str
) -> None:
    route, credentials, size = UNAUTHENTICATED_BODIES[case]
    workspace_id, token = proxied.register_directly()
    _, other_token = proxied.register_directly()
    authorization = {
        "none": [],
        "wrong": [f"Authorization: Bearer {secrets.token_urlsafe(32)}"],
        "other": [f"Authorization: Bearer {other_token}"],
        "malformed-id": [f"Authorization: Bearer {token}"],
    }[credentials]
    path = f"/workspaces/{'not-a-uuid' if credentials == 'malformed-id' else workspace_id}/{route}"
    content_type = "Content-Type: multipart/form-data; boundary=x"

    def head(length: int) -> bytes:
        return request_head("POST", path, *authorization, content_type, f"Content-Length: {length}")

    # The head alone: the answer arrives though not one byte of the body was sent.
    status, headers, body = proxied.exchange(head(size))
    held = proxied.proxy.temp_file_bytes("client_body")
    app_status, app_headers, app_body = proxied.exchange_directly(head(0))

    assert status == app_status
    assert app_status in (400, 401, 404)
    assert headers["Content-Type"] == "application/json"
    assert body == app_body
    assert headers.get("WWW-Authenticate") == app_headers.get("WWW-Authenticate")
    assert held == 0


def test_bodies_with_the_workspace_or_admin_token_still_upload(proxied: Proxied) -> None:
    workspace_id, token = proxied.register_directly()

    for credential in (token, ADMIN_TOKEN):
        status, answer = proxied.upload(workspace_id, credential, 64 * 1024).finish()
        assert status == 200, answer
        assert answer["files"][0]["size"] == 64 * 1024


def test_one_address_holds_a_bounded_number_of_upload_bodies(proxied: Proxied) -> None:
    workspace_id, token = proxied.register_directly()
    held = [
        proxied.upload(workspace_id, token, 2 * MIB, source="127.0.0.3")
        for _ in range(BODIES_PER_ADDRESS)
    ]
    # Past the 1 MiB memory buffer: each body now sits in a client_body temporary file.
    for body in held:
        body.send(3 * MIB // 2)
    wait_until(
        lambda: proxied.proxy.temp_file_bytes("client_body") >= BODIES_PER_ADDRESS * MIB,
        timeout=20,
        what="nginx to hold the four bodies",
    )

    refused = proxied.exchange(
        request_head(
            "POST",
            f"/workspaces/{workspace_id}/chat/uploads",
            f"Authorization: Bearer {token}",
            f"Content-Length: {MIB}",
        ),
        source="127.0.0.3",
    )
    elsewhere = proxied.upload(workspace_id, token, 2 * MIB, source="127.0.0.4").finish()
    finished = [body.finish() for body in held]

    status, headers, body = refused
    assert status == 429
    assert headers["Retry-After"] == "10"
    assert json.loads(body) == {
        "error": "too many requests in progress from this address, retry later"
    }
    assert elsewhere[0] == 200
    assert [status for status, _ in finished] == [200] * BODIES_PER_ADDRESS


# --- 4, 5. The admin and /metrics on the private server only ---------------------------------


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/admin/login/", "/admin", "/metrics", "/%6Detrics", "/internal/auth"],
)
def test_the_public_server_answers_404_json_for_the_admin_and_metrics(
    proxied: Proxied, path: str
) -> None:
    status, headers, body = proxied.exchange(request_head("GET", path))

    assert (status, headers["Content-Type"], body) == (
        404,
        "application/json",
        b'{"error":"not found"}',
    )


def test_the_private_server_serves_the_admin_its_static_files_and_metrics(
    proxied: Proxied,
) -> None:
    private = proxied.proxy.private_port
    password = secrets.token_urlsafe(16)

    with operator_login("proxy-operator", password):
        status, headers, page = exchange(private, private_head("GET", "/admin/login/", private))
        csrf_cookie = re.search(r"csrftoken=([^;]+)", headers["Set-Cookie"]).group(1)
        form_token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urlencode(
            {
                "csrfmiddlewaretoken": form_token.decode(),
                "username": "proxy-operator",
                "password": password,
            }
        ).encode()
        login = exchange(
            private,
            private_head(
                "POST",
                "/admin/login/?next=/admin/",
                private,
                f"Cookie: csrftoken={csrf_cookie}",
                # A browser's Origin on http://127.0.0.1:<port>: Django compares it with the Host.
                f"Origin: http://127.0.0.1:{private}",
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(form)}",
            )
            + form,
        )
        session = re.search(r"sessionid=([^;]+)", " ".join(login[1].get_all("Set-Cookie"))).group(1)
        index = exchange(
            private, private_head("GET", "/admin/", private, f"Cookie: sessionid={session}")
        )
        css = exchange(private, private_head("GET", "/static/admin/css/base.css", private))
        metrics = exchange(private, private_head("GET", "/metrics", private))
        api = exchange(private, private_head("GET", "/uploads/limits", private))

    assert status == 200
    assert (login[0], login[1]["Location"]) == (302, "/admin/")
    assert index[0] == 200
    assert b"Molecule uploads administration" in index[2]
    assert (css[0], css[1]["Content-Type"]) == (200, 'text/css; charset="utf-8"')
    assert metrics[0] == 200
    assert b"# TYPE molecule_pending_uploads_swept_total counter" in metrics[2]
    # Only what operators need: the API stays on the public server.
    assert (api[0], api[2]) == (404, b'{"error":"not found"}')


OPERATOR_INSERT_SQL = """
INSERT INTO auth_user (username, password, is_superuser, is_staff, is_active,
                       first_name, last_name, email, date_joined)
VALUES (%s, %s, true, true, true, '', '', '', now())
"""


@contextlib.contextmanager
def operator_login(username: str, password: str) -> Iterator[None]:
    """A superuser gunicorn can see (committed), and nothing of it or its sessions after."""
    with psycopg.connect(current_database_url(), autocommit=True) as conn:
        conn.execute(OPERATOR_INSERT_SQL, [username, make_password(password)])
        try:
            yield
        finally:
            conn.execute("DELETE FROM django_session")
            conn.execute("DELETE FROM auth_user WHERE username = %s", [username])


def private_head(method: str, path: str, port: int, *lines: str) -> bytes:
    return (
        "\r\n".join([f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *lines])
        + "\r\nConnection: close\r\n\r\n"
    ).encode()


# --- 7. HSTS, no version, JSON for nginx's own refusals --------------------------------------


def test_hsts_and_no_version_on_nginx_answers(proxied: Proxied) -> None:
    # An internal location asked from outside: nginx's own 404.
    own = proxied.exchange(request_head("GET", "/_molecule/not-found"))
    private = exchange(proxied.proxy.private_port, private_head("GET", "/metrics", 0))
    plain = exchange(proxied.proxy.plain_port, request_head("GET", "/"))

    assert own[1].get_all("Strict-Transport-Security") == ["max-age=63072000"]
    # Never over plain HTTP: on the redirect, nor on the operators' server.
    assert "Strict-Transport-Security" not in plain[1]
    assert "Strict-Transport-Security" not in private[1]
    for _, headers, body in (own, private, plain):
        assert headers["Server"] == "nginx"
        assert b"nginx/" not in body


# (request line, extra header lines, status, JSON body or None for the app's own answer)
OVERSIZED_REQUESTS = {
    "request line over nginx's 8 KiB": (
        f"/{'a' * 8300}",
        [],
        414,
        {"error": "request line too long"},
    ),
    # Over gunicorn's default 4,094, under nginx's limit: gunicorn.conf.py lets the app answer.
    "request line of 8,100 bytes": (f"/{'a' * 8100}", [], 404, None),
    "a header line over 8 KiB": (
        "/uploads/limits",
        [f"X-Big: {'b' * 9000}"],
        431,
        {"error": "request headers too large"},
    ),
    # Over gunicorn's default 100 fields; nginx passes them, and so does gunicorn.conf.py.
    "200 short headers": ("/uploads/limits", [f"X-{n}: a" for n in range(200)], 200, None),
    "2,000 short headers": (
        "/uploads/limits",
        [f"X-{n}: a" for n in range(2000)],
        431,
        {"error": "request headers too large"},
    ),
}


@pytest.mark.parametrize("case", list(OVERSIZED_REQUESTS))
def test_oversized_requests_get_json_never_html(proxied: Proxied, case: str) -> None:
    path, lines, expected_status, expected_json = OVERSIZED_REQUESTS[case]
    data = request_head("GET", path, *lines)

    status, headers, body = proxied.exchange(data)

    assert status == expected_status
    assert headers["Content-Type"] == "application/json"
    if expected_json is None:
        # The app's own answer, byte for byte.
        assert body == proxied.exchange_directly(data)[2]
    else:
        assert json.loads(body) == expected_json
        assert "X-Frame-Options" not in headers  # nginx's, not Django's


def test_a_request_nginx_cannot_parse_gets_400_json(proxied: Proxied) -> None:
    for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"):
        status, headers, body = proxied.exchange(data)
        assert (status, headers["Content-Type"], body) == (
            400,
            "application/json",
            b'{"error":"bad request"}',
        )


# (method, path, body lines): the app refuses each with its own JSON.
APP_REFUSALS = {
    400: (
        "POST",
        "/workspaces/{id}/chat/uploads",
        ["Authorization: Bearer {token}", "Content-Type: application/json"],
        b"{}",
    ),
    404: ("GET", "/no-such-page", [], b""),
    413: ("POST", "/registry/heartbeat", ["Content-Type: application/json"], b"[" * (100 * 1024)),
}


@pytest.mark.parametrize("status", list(APP_REFUSALS))
def test_the_apps_own_json_errors_pass_through_unchanged(proxied: Proxied, status: int) -> None:
    workspace_id, token = proxied.register_directly()
    method, path, lines, body = APP_REFUSALS[status]
    filled = [line.format(token=token) for line in lines]
    data = request_head(
        method, path.format(id=workspace_id), *filled, f"Content-Length: {len(body)}"
    )
    data += body

    through = proxied.exchange(data)
    direct = proxied.exchange_directly(data)

    assert through[0] == direct[0] == status
    assert through[2] == direct[2]
    for name in ("Content-Type", "X-Frame-Options", "WWW-Authenticate"):
        assert through[1].get(name) == direct[1].get(name)


def test_gunicorn_down_gets_503_json_for_polls_and_bodies(
    proxied: Proxied, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Nothing listens on the upstream: the token check itself cannot be asked.
    nothing = f"127.0.0.1:{free_port()}"
    with NginxProxy(nothing, root=tmp_path_factory.mktemp("nginx-down")) as down:
        workspace_id = uuid.uuid4()
        answers = [
            exchange(
                down.tls_port,
                request_head("GET", f"/workspaces/{workspace_id}/activity"),
                tls=client_tls_context(down.cert),
            ),
            exchange(
                down.tls_port,
                request_head(
                    "POST", f"/workspaces/{workspace_id}/chat/uploads", f"Content-Length: {MIB}"
                ),
                tls=client_tls_context(down.cert),
            ),
        ]

    for status, headers, body in answers:
        assert status == 503
        assert headers["Retry-After"] == "5"
        assert json.loads(body) == {"error": "service unavailable, retry later"}
