"""Cursors on the connection a manager's model is routed to: Django's, and a binding psycopg one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from django.db import connections, models, router


class RoutedCursorsMixin:
    """For managers: Django's cursor, and a plain psycopg one, both in Django's transaction."""

    model: type[models.Model]

    def _cursor(self) -> Any:
        return connections[router.db_for_write(self.model)].cursor()

    @contextlib.contextmanager
    def _binary_cursor(self) -> Iterator[psycopg.Cursor]:
        """A psycopg cursor that binds server-side; its errors arrive as Django's.

        Django's own cursors bind client-side (the SQL text carries the values), so
        PostgreSQL parses and plans every statement anew; this one sends the parameters apart,
        so a hot statement can be prepared: ``execute(..., prepare=True)`` prepares it on its
        first run on a connection, and PostgreSQL never parses or plans it again there. Only
        statements that ask are prepared (the connection's prepare_threshold, set in
        the settings, is never reached otherwise), and none when DB_PREPARED_STATEMENTS is off.
        """
        connection = connections[router.db_for_write(self.model)]
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            yield cursor
