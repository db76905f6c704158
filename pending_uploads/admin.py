"""Read-only admin for pending uploads, with a staff-only download and a Sweep now button."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.postgres.functions import TransactionNow as Now
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from molecule.admin_utils import EstimatedCountPaginator
from pending_uploads.models import PendingUpload
from pending_uploads.views import attachment_response

STATE_FILTERS = {
    "pending": Q(acked_at__isnull=True, fetched_at__isnull=True, expires_at__gt=Now()),
    "fetched": Q(acked_at__isnull=True, fetched_at__isnull=False, expires_at__gt=Now()),
    "acked": Q(acked_at__isnull=False),
    "expired": Q(acked_at__isnull=True, expires_at__lte=Now()),
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


@admin.register(PendingUpload)
class PendingUploadAdmin(admin.ModelAdmin):
    list_display = (
        "file_id",
        "workspace_id",
        "filename",
        "mimetype",
        "size",
        "state",
        "created_at",
        "expires_at",
    )
    list_filter = (StateFilter, MimeFamilyFilter)
    search_fields = ("filename",)
    search_help_text = "A workspace_id or file_id (exact UUID), or part of a filename."
    date_hierarchy = "created_at"
    show_full_result_count = False
    # Facet counts would count the whole table once per filter option.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    fields = (
        "file_id",
        "workspace_id",
        "filename",
        "mimetype",
        "size",
        "state",
        "created_at",
        "fetched_at",
        "acked_at",
        "expires_at",
        "download",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Never load the bytes for a list or a detail page.
        return super().get_queryset(request).defer("content")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        try:
            key = uuid.UUID(term)
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        # Exact UUID matches use the primary key and the workspace index, not a text scan.
        return queryset.filter(Q(file_id=key) | Q(workspace_id=key)), False

    @admin.display(ordering="size_bytes")
    def size(self, obj: PendingUpload) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display
    def state(self, obj: PendingUpload) -> str:
        return upload_state(obj)

    @admin.display(description="content")
    def download(self, obj: PendingUpload) -> str:
        url = reverse("admin:pending_uploads_pendingupload_download", args=[obj.file_id])
        return format_html('<a href="{}">Download {}</a>', url, obj.filename)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Only the sweeper deletes rows, so the swept counters stay equal to deletions.
        return False

    def get_urls(self):
        return [
            path(
                "<uuid:file_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="pending_uploads_pendingupload_download",
            ),
            path(
                "sweep/",
                self.admin_site.admin_view(require_POST(self.sweep_view)),
                name="pending_uploads_pendingupload_sweep",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, file_id: uuid.UUID) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404
        opened = PendingUpload.objects.open_chunks(file_id, workspace_id=None)
        if opened is None:
            raise Http404
        return attachment_response(opened)

    def sweep_view(self, request: HttpRequest) -> HttpResponseRedirect:
        from pending_uploads.managers import SweepError
        from pending_uploads.services import uploads_sweep

        if not self.has_view_permission(request):
            raise Http404
        try:
            report = uploads_sweep()
        except SweepError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"Swept {report.result.acked} acked and {report.result.expired} expired uploads "
                f"in {report.duration_ms:.0f} ms.",
            )
        return HttpResponseRedirect(reverse("admin:pending_uploads_pendingupload_changelist"))
