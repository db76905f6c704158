"""Cursors on the connection that the pending_uploads model is routed to."""

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
        """A psycopg cursor that binds server-side; its errors arrive as Django's."""
        connection = connections[router.db_for_write(self.model)]
        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            yield cursor
