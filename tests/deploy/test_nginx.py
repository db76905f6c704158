"""Debian's nginx with deploy/nginx/molecule-uploads.conf in front of real gunicorn.

The config is rendered for loopback ports, this stack and a throwaway certificate, nothing else.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.processes import ServiceStack
from devtools.processes.nginx import SITE_CONF, NginxProxy, client_tls_context, nginx_binary
from devtools.processes.slow_clients import SlowUpload, connect, response_read
from pending_uploads import conf
from tests.helpers import service_stack
from tests.integration.conftest import tables_truncate
from tests.integration.test_faults import http as http_json
from tests.integration.test_faults import register_body

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HOST = "uploads.test"
# The shipped limit: 1 request at once plus a burst of 10 (rate 6/min refills one per 10 s).
REGISTER_BURST_ALLOWED = 11
# A bound on the wait, not a target: with one gunicorn thread an unbuffered upload blocks it.
POLL_TIMEOUT = 10.0
BUFFERED_UPLOAD_BYTES = 8 * 1024 * 1024


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

    def register_directly(self) -> tuple[str, str]:
        """Register past nginx, so that setup never spends the rate limit's budget."""
        workspace_id = uuid.uuid4()
        status, _, body = http_json(
            "POST", self.stack.url("/registry/register"), body=register_body(workspace_id)
        )
        assert status == 200, body
        return str(workspace_id), body["auth_token"]


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
    status, headers, _ = proxied.request("GET", "/metrics")
    # 200 rather than 400: Django saw the public Host (ALLOWED_HOSTS), not the upstream's name.
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=60")

    status, headers, _ = http_direct(proxied.stack.port, "/metrics")
    assert status == 200
    assert "Strict-Transport-Security" not in headers

    plain = http.client.HTTPConnection("127.0.0.1", proxied.proxy.plain_port, timeout=10)
    plain.request("GET", "/metrics?x=1", headers={"Host": HOST})
    redirect = plain.getresponse()
    assert (redirect.status, redirect.getheader("Location")) == (301, f"https://{HOST}/metrics?x=1")
    plain.close()


def http_direct(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


def test_large_upload_is_buffered_by_nginx_and_the_download_streams(proxied: Proxied) -> None:
    workspace_id, token = proxied.register_directly()
    upload = SlowUpload(
        proxied.proxy.tls_port,
        host=HOST,
        workspace_id=workspace_id,
        token=token,
        size=BUFFERED_UPLOAD_BYTES,
        tls=proxied.tls,
    )
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


def test_the_proxy_body_cap_is_the_apps_default_request_cap() -> None:
    (size,) = re.findall(r"(?m)^\s*client_max_body_size (\d+)m;", SITE_CONF.read_text())

    # Every body the app would take passes nginx, a file of exactly the per-file cap included.
    assert int(size) * 1024 * 1024 == conf.max_request_bytes()
    assert conf.max_request_bytes() > conf.max_file_bytes()


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
