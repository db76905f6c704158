"""gunicorn with the shipped gunicorn.conf.py: slow clients, static files, the / page, JSON 404s."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.processes import ServiceStack, http_get
from devtools.processes.slow_clients import HeaderDrip, SlowUpload
from tests.helpers import service_stack
from tests.integration.conftest import tables_truncate
from tests.integration.test_faults import http, register_body

# Transactional: gunicorn must see committed rows (and the flush after each test empties them).
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# More slow connections than a sync server of 2 workers could ever hold at once.
SLOW_UPLOADS = 4
DRIPPING_HEADERS = 4
UPLOAD_BYTES = 256 * 1024
# A bound on the wait, not a target: under 2 sync workers this poll never answers.
POLL_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def stack(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    """gunicorn as gunicorn.conf.py configures it (no worker count passed), DEBUG off."""
    workdir = tmp_path_factory.mktemp("serving")
    with django_db_blocker.unblock():
        running = service_stack(workdir, web_workers=None)
        try:
            yield running.start(qcluster=False)
        finally:
            running.stop()
            tables_truncate()


def registered(stack: ServiceStack) -> tuple[str, str]:
    workspace_id = str(uuid.uuid4())
    status, _, body = http(
        "POST", stack.url("/registry/register"), body=register_body(uuid.UUID(workspace_id))
    )
    assert status == 200, (body, stack.log_tail())
    return workspace_id, body["auth_token"]


def test_gunicorn_reads_the_shipped_config_by_default(stack: ServiceStack) -> None:
    log = stack.log_text()
    assert "Using worker: gthread" in log
    assert "gthread: 2 workers x 16 threads; up to 32 database connections" in log
    assert "push forwards: up to 8 per worker, 16 from this server; more get 503" in log
    assert "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT" not in log
    assert len(stack.pids()["gunicorn_workers"]) == 2


def test_slow_uploads_and_dripping_headers_do_not_stall_a_poll(stack: ServiceStack) -> None:
    workspace_id, token = registered(stack)
    uploads = [
        SlowUpload(
            stack.port, host="127.0.0.1", workspace_id=workspace_id, token=token, size=UPLOAD_BYTES
        )
        for _ in range(SLOW_UPLOADS)
    ]
    drips = [HeaderDrip(stack.port, host="127.0.0.1") for _ in range(DRIPPING_HEADERS)]
    try:
        for upload in uploads:
            upload.send(UPLOAD_BYTES // 4)
        for drip in drips:
            drip.drip(40)

        status, _, _ = http_get(
            stack.url(f"/workspaces/{workspace_id}/activity"), token=token, timeout=POLL_TIMEOUT
        )
        assert status == 200

        answers = [upload.finish() for upload in uploads]
    finally:
        for drip in drips:
            drip.close()
    assert [status for status, _ in answers] == [200] * SLOW_UPLOADS
    assert all(body["files"][0]["size"] == UPLOAD_BYTES for _, body in answers)
    status, _, listed = http(
        "GET", stack.url(f"/workspaces/{workspace_id}/pending-uploads"), token=token
    )
    assert status == 200
    assert len(listed) == SLOW_UPLOADS


def test_admin_css_is_served_by_the_app_with_debug_off(stack: ServiceStack) -> None:
    status, headers, body = http_get(stack.url("/static/admin/css/base.css"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert b"DJANGO Admin styles" in body


def test_home_page_links_admin_metrics_and_api(stack: ServiceStack) -> None:
    status, headers, body = http_get(stack.url("/"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    for link in ('href="/admin/"', 'href="/metrics"', "HTTP API", "/registry/register"):
        assert link in page


def test_unknown_url_answers_json_with_debug_off(stack: ServiceStack) -> None:
    status, headers, body = http_get(stack.url("/no/such/page"))
    assert (status, headers["Content-Type"], body) == (
        404,
        "application/json",
        b'{"error":"not found"}',
    )


def test_gunicorn_warns_when_the_forward_cap_could_take_every_thread(tmp_path) -> None:
    workers = service_stack(tmp_path, web_workers=1, extra_env={"GUNICORN_THREADS": "4"}).start(
        qcluster=False
    )
    try:
        log = workers.log_text()
    finally:
        workers.stop()
    assert "push forwards: up to 8 per worker, 8 from this server; more get 503" in log
    assert "PENDING_UPLOADS_FORWARD_MAX_CONCURRENT (8) is not below the 4 threads per worker" in log
