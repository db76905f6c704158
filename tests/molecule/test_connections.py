"""A reused connection that the server hung up on is dropped before a request uses it."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from django.test import Client

from molecule.connections import is_hung_up
from tests.helpers import RegisteredWorkspace, current_database_url

TERMINATE_SQL = "SELECT pg_terminate_backend(%s)"


def wait_until_hung_up(raw: psycopg.Connection, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_hung_up(raw):
        assert time.monotonic() < deadline, "the server never hung up"
        time.sleep(0.01)


def terminate(backend_pid: int) -> None:
    with psycopg.connect(current_database_url(), autocommit=True) as admin:
        admin.execute(TERMINATE_SQL, [backend_pid])


def test_a_live_idle_connection_is_not_hung_up_and_a_terminated_one_is() -> None:
    with psycopg.connect(current_database_url(), autocommit=True) as raw:
        raw.execute("SELECT 1")
        assert not is_hung_up(raw)
        # A notice read with the last result leaves nothing behind; still alive.
        raw.execute("DO $$ BEGIN RAISE NOTICE 'hello'; END $$")
        assert not is_hung_up(raw)

        terminate(raw.info.backend_pid)

        wait_until_hung_up(raw)
    assert is_hung_up(raw)


@pytest.mark.django_db(transaction=True)
def test_the_first_request_after_a_hang_up_is_served_on_a_new_connection(register) -> None:
    ws: RegisteredWorkspace = register("poller", "poll")
    api = Client()
    assert api.get(ws.url("activity"), **ws.auth).status_code == 200
    old = connection.connection
    terminate(old.info.backend_pid)
    wait_until_hung_up(old)

    # Without a check the request would fail on the dead connection (503); with
    # CONN_HEALTH_CHECKS it would have asked with a SELECT 1 first, on every request.
    answer = api.get(ws.url("activity"), **ws.auth)

    assert (answer.status_code, answer.content) == (200, b"[]")
    assert connection.connection is not old


@pytest.mark.django_db(transaction=True)
def test_a_live_connection_is_kept_across_requests(register) -> None:
    ws: RegisteredWorkspace = register("poller", "poll")
    api = Client()
    api.get(ws.url("activity"), **ws.auth)
    kept = connection.connection

    for _ in range(3):
        assert api.get(ws.url("activity"), **ws.auth).status_code == 200

    assert connection.connection is kept
