"""The / page and JSON 404s, with DEBUG on as bin/run runs (production is covered with gunicorn)."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

pytestmark = [pytest.mark.django_db, pytest.mark.urls("molecule.urls")]


@override_settings(DEBUG=True)
def test_home_page_is_html_with_links_to_admin_metrics_and_the_api(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'href="/admin/"' in page
    assert 'href="/metrics"' in page
    assert "HTTP API" in page and "docs/api.md" in page
    # The route list comes from the URL configuration, so every API route is there.
    for route in (
        "/registry/register",
        "/registry/heartbeat",
        "/workspaces/&lt;workspace_id&gt;/chat/uploads",
        "/workspaces/&lt;workspace_id&gt;/pending-uploads/&lt;file_id&gt;/ack",
    ):
        assert route in page
    assert "/admin/" not in page.split("routes:")[-1].split("</ul>")[0]


@override_settings(DEBUG=True)
@pytest.mark.parametrize(
    ("path", "status"),
    [("/no/such/page", 404), ("/registry/registerx", 404), ("/static/admin/missing.css", 404)],
)
def test_unknown_urls_answer_json_with_debug_on(client: Client, path: str, status: int) -> None:
    response = client.get(path)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"error": "not found"}


@override_settings(DEBUG=True)
def test_append_slash_still_redirects_before_the_json_404(client: Client) -> None:
    response = client.get("/admin")

    assert response.status_code == 301
    assert response["Location"] == "/admin/"


def test_home_page_refuses_other_methods_with_json(client: Client) -> None:
    response = client.post("/")

    assert response.status_code == 405
    assert json.loads(response.content) == {"error": "method POST not allowed"}
