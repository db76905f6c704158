"""Read-only admin for pending uploads, with a staff-only download and a Sweep now button."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from molecule.admin_utils import COUNT_CAP, MachineWrittenAdmin, compact_time, short_uuid
from molecule.http.responses import ApiError
from pending_uploads import conf
from pending_uploads.admin.filters import (
    STATE_ORDERING,
    MimeFamilyFilter,
    StateFilter,
    upload_state,
)
from pending_uploads.admin.search import MAX_SEARCH_WORDS, parse_search
from pending_uploads.admin.sweep_message import left_alone_message
from pending_uploads.managers import SweepError
from pending_uploads.models import PendingUpload
from pending_uploads.services import uploads_sweep
from pending_uploads.views import attachment_response, open_content

__all__ = ["PendingUploadAdmin", "parse_search"]


@admin.register(PendingUpload)
class PendingUploadAdmin(MachineWrittenAdmin):
    list_display = (
        "file",
        "workspace_link",
        "filename",
        "mimetype",
        "size",
        "state",
        "created",
        "expires",
    )
    list_display_links = ("file",)
    list_filter = (StateFilter, MimeFamilyFilter)
    # Newest first, on pending_uploads_created_idx read backwards.
    ordering = ("-created_at", "-file_id")
    # Only the indexed column sorts: sorting a million rows by filename would read them all.
    sortable_by = ("created",)
    # The search is get_search_results' own; a non-empty search_fields shows the box.
    search_fields = ("filename",)
    search_help_text = (
        "A workspace or file UUID (exact), and/or up to 3 whole words of a filename "
        "(split at . _ -, any case). Further terms are ignored."
    )
    date_hierarchy = "created_at"
    # Carrying the list's filters into each row's link resolves that link once per row: a tenth
    # of a filtered page's time. The read-only detail page has nothing to return to them for.
    preserve_filters = False
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

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        # Acked and expired rows are few and old, so walking created_idx from the newest row to
        # find them reads most of the table (4 s at 1M rows). Under those filters the list is
        # newest-acked or newest-expired first, off the state's own partial index.
        return STATE_ORDERING.get(request.GET.get("state", ""), self.ordering)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Never load the bytes for a list or a detail page.
        return super().get_queryset(request).defer("content", "filename_words")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        terms = parse_search(search_term)
        if not search_term.strip():
            return queryset, False
        if terms.ignored:
            messages.warning(
                request,
                f"The search reads one UUID and up to {MAX_SEARCH_WORDS} filename words; "
                f"{terms.ignored} more {'term was' if terms.ignored == 1 else 'terms were'} "
                "ignored.",
            )
        if terms.empty or terms.impossible:
            return queryset.none(), False
        if terms.key is not None:
            queryset = queryset.matching_uuid(terms.key)
        if terms.words:
            queryset = queryset.with_filename_words(terms.words)
        return queryset, False

    @admin.display(description="file")
    def file(self, obj: PendingUpload) -> str:
        return short_uuid(obj.file_id)

    @admin.display(description="expires")
    def expires(self, obj: PendingUpload) -> str:
        return compact_time(obj.expires_at)

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
        try:
            opened = open_content(file_id, workspace_id=None)
        except ApiError as exc:
            messages.error(request, f"Download failed: {exc.message}.")
            return HttpResponseRedirect(
                reverse("admin:pending_uploads_pendingupload_change", args=[file_id])
            )
        if opened is None:
            raise Http404
        return attachment_response(opened)

    def has_sweep_permission(self, request: HttpRequest) -> bool:
        """The sweep deletes rows: it takes the model's delete permission, which the admin
        itself never uses (has_delete_permission is False: only the sweeps delete)."""
        opts = self.opts
        codename = get_permission_codename("delete", opts)
        return request.user.has_perm(f"{opts.app_label}.{codename}")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {**(extra_context or {}), "can_sweep": self.has_sweep_permission(request)}
        return super().changelist_view(request, extra_context)

    def sweep_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if not self.has_view_permission(request):
            raise Http404
        if not self.has_sweep_permission(request):
            messages.error(request, "You may not delete pending uploads, so you may not sweep.")
            return HttpResponseRedirect(reverse("admin:pending_uploads_pendingupload_changelist"))
        retention = conf.ack_retention()
        try:
            report = uploads_sweep(ack_retention=retention)
        except SweepError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"Swept {report.result.acked} acked and {report.result.expired} expired uploads "
                f"in {report.duration_ms:.0f} ms.",
            )
            left = PendingUpload.objects.sweep_left_alone(retention, cap=COUNT_CAP + 1)
            messages.info(request, left_alone_message(left, retention))
        return HttpResponseRedirect(reverse("admin:pending_uploads_pendingupload_changelist"))
