"""The outbox of bucket objects whose rows the sweep deleted: drained after each sweep, and
read by the reaper, which looks for objects that no row and no outbox entry names."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.db import transaction

from molecule.managers.cursors import RoutedCursorsMixin
from molecule.totals import ADD_TO_TOTALS
from pending_uploads import metrics
from pending_uploads.managers.types import DrainResult, OrphanPage
from pending_uploads.storage import Deleted

# Raw for FOR UPDATE SKIP LOCKED: concurrent drains (two sweepers) claim disjoint entries and
# never wait for each other. One entry (one sweep batch's keys) per claim; keyset on the id, so
# one drain visits each entry once, and a key whose delete keeps failing cannot hold the drain
# in a loop.
OUTBOX_CLAIM_SQL = """
SELECT id, keys FROM pending_uploads_object_deletions
 WHERE id > %(after)s
 ORDER BY id
 LIMIT 1
   FOR UPDATE SKIP LOCKED
"""

# Raw so that the entry loses the keys whose objects are gone and the counts are added in one
# statement: the counts commit with the entry's change. An entry with no key left is removed;
# one whose deletes partly failed keeps only the keys still to delete.
OUTBOX_DONE_SQL = f"""
WITH kept AS (
    UPDATE pending_uploads_object_deletions SET keys = %(left)s::text[]
     WHERE id = %(id)s AND cardinality(%(left)s::text[]) > 0
), removed AS (
    DELETE FROM pending_uploads_object_deletions
     WHERE id = %(id)s AND cardinality(%(left)s::text[]) = 0
), increments (metric, label, n) AS (
    SELECT %(deleted_counter)s, '', %(deleted)s::double precision
    UNION ALL
    SELECT %(failed_counter)s, '', %(failed)s::double precision
), counted AS ({ADD_TO_TOTALS})
SELECT 1
"""  # noqa: S608 - composed of constants; every value is a bound parameter

# Raw to check a listing page of up to 1,000 objects in one round trip. A bucket row is found
# by its primary key (the key ends in its file_id) and must name the key itself; the outbox,
# empty or small, is read whole (a hashed anti-join). The grace period is decided by the
# database's clock against S3's LastModified.
ORPHANS_SQL = """
SELECT k.key, k.modified < now() - make_interval(secs => %(grace_seconds)s)
  FROM unnest(%(keys)s::text[], %(file_ids)s::uuid[], %(modified)s::timestamptz[])
       AS k (key, file_id, modified)
 WHERE NOT EXISTS (SELECT 1 FROM pending_uploads AS p
                    WHERE p.file_id = k.file_id AND p.storage_key = k.key)
   AND NOT EXISTS (SELECT 1 FROM pending_uploads_object_deletions AS d, unnest(d.keys) AS q (key)
                    WHERE q.key = k.key)
"""


class OutboxMixin(RoutedCursorsMixin):
    db: str

    def outbox_drain(
        self, delete: Callable[[list[str]], Deleted], *, batch_size: int
    ) -> DrainResult:
        """Delete every queued object once: one entry per transaction, its keys passed to
        ``delete`` ``batch_size`` at a time.

        The claimed entry stays locked while ``delete`` runs and loses the deleted keys in the
        same transaction, so a crash at any point leaves them queued; deleting an object twice
        is harmless. Errors of ``delete`` roll the claim back and propagate.
        """
        done = DrainResult(0, 0)
        after = 0
        while True:
            with transaction.atomic(using=self.db), self._cursor() as cursor:
                cursor.execute(OUTBOX_CLAIM_SQL, {"after": after})
                claimed = cursor.fetchone()
                if claimed is None:
                    return done
                after, keys = claimed
                gone: set[str] = set()
                failed = 0
                for start in range(0, len(keys), batch_size):
                    deleted = delete(keys[start : start + batch_size])
                    gone.update(deleted.keys)
                    failed += len(deleted.failed)
                left = [key for key in keys if key not in gone]
                cursor.execute(
                    OUTBOX_DONE_SQL,
                    {
                        "id": after,
                        "left": left,
                        "deleted": len(keys) - len(left),
                        "failed": failed,
                        "deleted_counter": metrics.objects_deleted.name,
                        "failed_counter": metrics.object_delete_errors.name,
                    },
                )
            done += DrainResult(len(keys) - len(left), failed)

    def outbox_orphans(
        self, objects: Sequence[tuple[str, datetime]], *, grace: timedelta
    ) -> OrphanPage:
        """Of these (key, last modified) objects, those no row and no outbox entry names."""
        if not objects:
            return OrphanPage([], [])
        keys = [key for key, _ in objects]
        params = {
            "keys": keys,
            "file_ids": [_file_id(key) for key in keys],
            "modified": [modified for _, modified in objects],
            "grace_seconds": max(grace.total_seconds(), 0.0),
        }
        with self._cursor() as cursor:
            cursor.execute(ORPHANS_SQL, params)
            found = cursor.fetchall()
        return OrphanPage([key for key, _ in found], [key for key, old in found if old])


def _file_id(key: str) -> uuid.UUID | None:
    """The file_id a key ends with (S3Storage.key_for), or None for a key that is not ours."""
    try:
        return uuid.UUID(key.rsplit("/", 1)[-1])
    except ValueError:
        return None
