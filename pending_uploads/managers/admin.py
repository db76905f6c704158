"""The admin's reads: exact UUID lookups, filename words, and what a sweep left alone."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import NamedTuple

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.expressions import RawSQL

from molecule.managers.cursors import RoutedCursorsMixin

# Raw because the plan needs one index per arm: spelled as "file_id = X OR workspace_id = X"
# inside the admin's ORDER BY created_at LIMIT, the planner walks pending_uploads_created_idx
# and filters every row (400-580 ms at 300k rows). As a UNION ALL in an IN (...), the first arm
# is a primary-key probe and the second a range of pending_uploads_ws_created_idx.
UUID_MATCH_SQL = """
SELECT file_id FROM pending_uploads WHERE file_id = %s
UNION ALL
SELECT file_id FROM pending_uploads WHERE workspace_id = %s
"""

# Raw to read both "left alone" sets in one round trip. Each count stops at %(cap)s rows, so
# the statement costs at most a few index pages whatever the backlog; the predicates are the
# sweep's, negated, so each arm walks its partial index (acked_idx, expiry_idx).
SWEEP_LEFT_ALONE_SQL = """
SELECT (SELECT count(*) FROM (
            SELECT 1 FROM pending_uploads
             WHERE acked_at > now() - make_interval(secs => %(retention_seconds)s)
             LIMIT %(cap)s) AS acked),
       (SELECT EXTRACT(EPOCH FROM min(acked_at) - now()) + %(retention_seconds)s
          FROM pending_uploads
         WHERE acked_at > now() - make_interval(secs => %(retention_seconds)s)),
       (SELECT count(*) FROM (
            SELECT 1 FROM pending_uploads
             WHERE acked_at IS NULL AND expires_at > now()
             LIMIT %(cap)s) AS unexpired),
       (SELECT EXTRACT(EPOCH FROM min(expires_at) - now())
          FROM pending_uploads
         WHERE acked_at IS NULL AND expires_at > now())
"""


class FilenameWords(models.Func):
    """The words of a filename, lower-cased and split at ``.``, ``_`` and ``-``.

    The generated column filename_words holds it, under a GIN index, so a search for whole
    words is an index lookup; a substring search would need pg_trgm, which the embedded
    PostgreSQL does not ship.
    """

    function = "regexp_split_to_array"
    template = "%(function)s(lower(%(expressions)s), '[._-]+')"
    output_field = ArrayField(models.TextField())


def filename_words(text: str) -> list[str]:
    """Split ``text`` as FilenameWords splits a filename (Python side, for search terms)."""
    return [word for word in re.split(r"[._-]+", text.lower()) if word]


class SweepLeftAlone(NamedTuple):
    """Rows a sweep did not delete: counts stop at the cap; seconds until the next is due."""

    acked_within_retention: int
    acked_next_due_seconds: float | None
    unacked_unexpired: int
    unacked_next_expiry_seconds: float | None


class AdminQuerySetMixin:
    """Queryset methods for the admin's search (mixed into PendingUploadQuerySet)."""

    def matching_uuid(self, key: uuid.UUID) -> models.QuerySet:
        """Rows whose file_id or workspace_id is ``key``, one index per arm (UUID_MATCH_SQL)."""
        # A constant statement; the key travels as a bound parameter.
        matches = RawSQL(UUID_MATCH_SQL, (key, key))  # noqa: S611
        return self.filter(file_id__in=matches)  # type: ignore[attr-defined]

    def with_filename_words(self, words: Sequence[str]) -> models.QuerySet:
        """Rows whose filename holds every one of ``words`` (lower-case), on the GIN index."""
        return self.filter(filename_words__contains=list(words))  # type: ignore[attr-defined]


class AdminReadsMixin(RoutedCursorsMixin):
    def sweep_left_alone(self, ack_retention: timedelta, *, cap: int) -> SweepLeftAlone:
        """What a sweep with ``ack_retention`` leaves: acked within it, unacked unexpired."""
        params = {"retention_seconds": max(ack_retention.total_seconds(), 0.0), "cap": cap}
        with self._cursor() as cursor:
            cursor.execute(SWEEP_LEFT_ALONE_SQL, params)
            acked, acked_due, unexpired, next_expiry = cursor.fetchone()
        return SweepLeftAlone(
            acked,
            None if acked_due is None else float(acked_due),
            unexpired,
            None if next_expiry is None else float(next_expiry),
        )
