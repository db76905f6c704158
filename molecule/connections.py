"""Reused database connections: drop the ones the server has hung up on, with no round trip."""

from __future__ import annotations

import select
from typing import Any

import psycopg
from django.db import connections
from psycopg import pq


def is_hung_up(connection: psycopg.Connection) -> bool:
    """True when PostgreSQL has closed this idle connection (or it is closed already).

    An idle connection receives nothing unless the server ends it (a FATAL message, then the
    socket closes: a restart, pg_terminate_backend, a proxy or network hang-up), so a socket
    with nothing to read is alive as far as anything but a round trip can tell.
    """
    if connection.closed or connection.broken:
        return True
    pgconn = connection.pgconn
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        # Read what arrived: a hang-up leaves the connection bad (or raises); a stray notice
        # does not.
        pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return pgconn.status != pq.ConnStatus.OK


def close_hung_up(**kwargs: Any) -> None:
    """request_started: close every connection the server has hung up on, so the request
    opens a fresh one instead of failing on the dead one (CONN_HEALTH_CHECKS would ask with a
    SELECT 1, one round trip on every request)."""
    for wrapper in connections.all(initialized_only=True):
        raw = wrapper.connection
        if raw is not None and not wrapper.in_atomic_block and is_hung_up(raw):
            wrapper.close()
