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

# Raw for FOR UPDATE SKIP LOCKED: concurrent drains (two sweepers) claim disjoint keys and
# never wait for each other. Keyset on the id, so one drain visits each queued key once, and
# a key whose delete keeps failing cannot hold the drain in a loop.
OUTBOX_CLAIM_SQL = """
SELECT id, key FROM pending_uploads_object_deletions
 WHERE id > %(after)s
 ORDER BY id
 LIMIT %(limit)s
   FOR UPDATE SKIP LOCKED
"""

# Raw so that the keys whose objects are gone leave the outbox and are counted in one
# statement: the count commits with the removal. Failed keys stay queued; their count is
# added here too.
OUTBOX_DONE_SQL = f"""
WITH removed AS (
    DELETE FROM pending_uploads_object_deletions WHERE id = ANY(%(deleted)s::bigint[])
 RETURNING 1
), increments (metric, label, n) AS (
    SELECT %(deleted_counter)s, '', count(*)::double precision FROM removed
    UNION ALL
    SELECT %(failed_counter)s, '', %(failed)s::double precision
), counted AS ({ADD_TO_TOTALS})
SELECT count(*) FROM removed
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
   AND NOT EXISTS (SELECT 1 FROM pending_uploads_object_deletions AS d WHERE d.key = k.key)
"""


class OutboxMixin(RoutedCursorsMixin):
    db: str

    def outbox_drain(
        self, delete: Callable[[list[str]], Deleted], *, batch_size: int
    ) -> DrainResult:
        """Delete every queued object once, ``batch_size`` keys per claim and transaction.

        The claimed keys stay locked while ``delete`` runs and leave the outbox in the same
        transaction, so a crash at any point leaves them queued; deleting an object twice is
        harmless. Errors of ``delete`` roll the claim back and propagate.
        """
        done = DrainResult(0, 0)
        after = 0
        while True:
            with transaction.atomic(using=self.db), self._cursor() as cursor:
                cursor.execute(OUTBOX_CLAIM_SQL, {"after": after, "limit": batch_size})
                claimed = dict(cursor.fetchall())
                if not claimed:
                    return done
                keys = list(claimed.values())
                deleted = delete(keys)
                gone = set(deleted.keys)
                cursor.execute(
                    OUTBOX_DONE_SQL,
                    {
                        "deleted": [id_ for id_, key in claimed.items() if key in gone],
                        "failed": len(deleted.failed),
                        "deleted_counter": metrics.objects_deleted.name,
                        "failed_counter": metrics.object_delete_errors.name,
                    },
                )
                (removed,) = cursor.fetchone()
            done += DrainResult(removed, len(deleted.failed))
            if len(claimed) < batch_size:
                return done
            after = max(claimed)

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
