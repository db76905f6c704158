"""Admin helpers for tables of a million rows: estimated counts and a POST-only tool button."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property


class EstimatedCountPaginator(Paginator):
    """Use the planner's row estimate for an unfiltered table instead of a full COUNT(*)."""

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if not query.where:
            table = self.object_list.model._meta.db_table
            with connections[self.object_list.db].cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table]
                )
                row = cursor.fetchone()
            # reltuples is -1 before the first ANALYZE; small tables are cheap to count exactly.
            if row and row[0] > 10_000:
                return int(row[0])
        return super().count
