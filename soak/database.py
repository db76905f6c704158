"""The soak's own database on bench's server (DATABASE_URL's, or an embedded one), and reads."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from bench.database import Server

SAMPLE_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE acked_at IS NOT NULL),
       count(*) FILTER (WHERE acked_at IS NULL AND expires_at <= now()),
       pg_total_relation_size('pending_uploads'),
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'pending_uploads')
  FROM pending_uploads
"""


def _admin_url(server: Server, name: str) -> str:
    """A maintenance database other than ``name``: one cannot drop the database in use."""
    return server.url("template1" if name == "postgres" else "postgres")


def database_recreate(server: Server, name: str) -> str:
    """Drop and create ``name`` on ``server``; return its URL."""
    database_drop(server, name)
    with psycopg.connect(_admin_url(server, name), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


def database_drop(server: Server, name: str) -> None:
    with psycopg.connect(_admin_url(server, name), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def db_one(query: str, params: Any = None) -> tuple:
    """One row from the driver's own Django connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone()
