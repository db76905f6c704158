"""Admin helpers for tables of a million rows: honest counts, bounded pages, short UUIDs."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import SafeString

# A filtered list counts its matches up to this many and then says "10,000+": an exact COUNT(*)
# of a filter that matches most of a million rows reads them all.
COUNT_CAP = 10_000
# Pages past this are not offered: OFFSET reads every row it skips, so page 100 (rows
# 9,901-10,000) is the deepest that stays cheap. Narrow the list to go further back.
MAX_PAGES = 100
# Below this many rows (planner estimate) the unfiltered table is counted exactly.
EXACT_COUNT_BELOW = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts that never read a whole big table, and that say what kind of count they are.

    - unfiltered, big table: the planner's row estimate (``count_kind == "estimate"``);
    - filtered: the matches counted up to COUNT_CAP (``"capped"`` when the cap was reached);
    - otherwise exact. At most MAX_PAGES pages are offered.
    """

    @cached_property
    def _measured(self) -> tuple[int, str]:
        if not self.object_list.query.where:
            estimate = self._estimate()
            if estimate >= EXACT_COUNT_BELOW:
                return estimate, "estimate"
        # LIMIT inside, COUNT outside: reads at most COUNT_CAP + 1 matches.
        capped = self.object_list.order_by()[: COUNT_CAP + 1].count()
        if capped > COUNT_CAP:
            return COUNT_CAP, "capped"
        return capped, "exact"

    @property
    def count(self) -> int:
        return self._measured[0]

    @property
    def count_kind(self) -> str:
        """ "exact", "capped" (there are more than COUNT_CAP) or "estimate" (planner's)."""
        return self._measured[1]

    @cached_property
    def num_pages(self) -> int:
        return min(super().num_pages, MAX_PAGES)

    @property
    def pages_capped(self) -> bool:
        return -(-self.count // self.per_page) > MAX_PAGES

    @cached_property
    def count_label(self) -> str:
        """ "12 uploads", "10,000+ uploads" or "about 1,000,000 uploads (estimate)"."""
        opts = self.object_list.model._meta
        noun = opts.verbose_name if self.count == 1 else opts.verbose_name_plural
        number = f"{self.count:,}"
        if self.count_kind == "capped":
            return f"{number}+ {noun}"
        if self.count_kind == "estimate":
            return f"about {number} {noun} (estimate)"
        return f"{number} {noun}"

    def _estimate(self) -> int:
        table = self.object_list.model._meta.db_table
        with connections[self.object_list.db].cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table]
            )
            row = cursor.fetchone()
        # reltuples is -1 before the first ANALYZE.
        return int(row[0]) if row else -1


def short_uuid(value: uuid.UUID, *, href: str | None = None) -> SafeString:
    """The first 8 hex digits in monospace; the full value on hover, and in the link if any."""
    if href is None:
        return format_html('<span class="uuid" title="{}">{}</span>', value, str(value)[:8])
    return format_html('<a class="uuid" href="{}" title="{}">{}</a>', href, value, str(value)[:8])


def compact_time(value: datetime | None) -> SafeString | str:
    """``2026-12-02 06:57`` on one line; seconds and zone on hover."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        local.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        local.strftime("%Y-%m-%d %H:%M"),
    )


# A JSON text's tokens: a whole string (escapes included), punctuation, or a bare scalar.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\],:]|[^{}\[\],:"\s]+')
# Deeper levels are indented no further, so a line never starts with more than 64 spaces.
MAX_INDENT = 32
# An activity body can be 1 MiB of JSON; a page shows the first 256 KiB.
JSON_SHOWN_BYTES = 256 * 1024


def json_pretty(text: str, *, limit: int = JSON_SHOWN_BYTES) -> str:
    """A JSON text (PostgreSQL's jsonb output) indented for reading, two spaces a level.

    Iterative over the tokens, so any depth renders; json.loads of a value nested as deep as
    the API accepts already overflows the admin's deeper stack. Past ``limit`` characters the
    text is cut, and says so.
    """
    tokens = _JSON_TOKENS.findall(text[:limit])
    parts: list[str] = []
    depth = 0

    def newline() -> None:
        parts.append("\n" + "  " * min(depth, MAX_INDENT))

    for index, item in enumerate(tokens):
        if item in ("}", "]"):
            depth -= 1
            if parts and parts[-1] not in ("{", "["):
                newline()
            parts.append(item)
        elif item in ("{", "["):
            parts.append(item)
            depth += 1
            if index + 1 < len(tokens) and tokens[index + 1] not in ("}", "]"):
                newline()
        elif item == ",":
            parts.append(",")
            newline()
        elif item == ":":
            parts.append(": ")
        else:
            parts.append(item)
    if len(text) > limit:
        parts.append(f"\n… (truncated: {len(text):,} bytes in all)")
    return "".join(parts)


class LargeTableAdmin(admin.ModelAdmin):
    """Changelist settings for a table of a million rows: no full count, no facets."""

    show_full_result_count = False
    # Facet counts would count the whole table once per filter option.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator


class MachineWrittenAdmin(LargeTableAdmin):
    """Read-only admin for a per-workspace table that only the service writes and deletes."""

    @admin.display(description="workspace")
    def workspace_link(self, obj) -> SafeString:
        # The link searches for the full value: every row of that workspace.
        return short_uuid(obj.workspace_id, href=f"?q={obj.workspace_id}")

    @admin.display(description="created", ordering="created_at")
    def created(self, obj) -> SafeString | str:
        return compact_time(obj.created_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Only the sweeps delete rows, so the swept counters stay equal to deletions.
        return False
