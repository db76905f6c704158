"""The changelist's state and mimetype filters, and the state each row shows."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.postgres.functions import TransactionNow as Now
from django.db.models import Q
from django.utils import timezone

from pending_uploads.models import PendingUpload

STATE_FILTERS = {
    "pending": Q(acked_at__isnull=True, fetched_at__isnull=True, expires_at__gt=Now()),
    "fetched": Q(acked_at__isnull=True, fetched_at__isnull=False, expires_at__gt=Now()),
    "acked": Q(acked_at__isnull=False),
    "expired": Q(acked_at__isnull=True, expires_at__lte=Now()),
}


STATE_ORDERING = {
    "acked": ("-acked_at", "-file_id"),
    "expired": ("-expires_at", "-file_id"),
}


def upload_state(row: PendingUpload) -> str:
    if row.acked_at is not None:
        return "acked"
    if row.expires_at <= timezone.now():
        return "expired"
    return "fetched" if row.fetched_at is not None else "pending"


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(state, state) for state in STATE_FILTERS]

    def queryset(self, request, queryset):
        condition = STATE_FILTERS.get(self.value() or "")
        return queryset.filter(condition) if condition is not None else queryset


class MimeFamilyFilter(admin.SimpleListFilter):
    """Filter by the type part; a DISTINCT over a million mimetypes would slow every page."""

    title = "mimetype"
    parameter_name = "mimetype"

    def lookups(self, request, model_admin):
        families = ("application", "audio", "image", "text", "video")
        return [(family, f"{family}/*") for family in families]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(mimetype__startswith=f"{self.value()}/")
        return queryset
