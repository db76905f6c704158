"""statement_timeout on every session, and a statement that hits it answered as a clean 503."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from molecule.models import ActivityLog
from tests.helpers import RegisteredWorkspace, assert_json_error


@pytest.mark.django_db
def test_every_session_runs_with_the_default_statement_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() == ("30s",)


def test_a_statement_over_the_timeout_is_503_and_the_next_request_is_served(
    transactional_db, register, monkeypatch
):
    ws: RegisteredWorkspace = register("slow", "poll")
    api = Client()
    real_feed = ActivityLog.objects.feed

    def slow_feed(*args, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(5)")
        return real_feed(*args, **kwargs)

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '200ms'")
    try:
        monkeypatch.setattr(ActivityLog.objects, "feed", slow_feed)
        slow = api.get(ws.url("activity"), **ws.auth)
        monkeypatch.setattr(ActivityLog.objects, "feed", real_feed)
        after = api.get(ws.url("activity"), **ws.auth)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")

    body = assert_json_error(slow, 503)
    assert "took too long" in body["error"]
    assert slow["Retry-After"] == "5"
    assert (after.status_code, after.content) == (200, b"[]")
