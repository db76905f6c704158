"""Admin for workspaces and the activity log."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from molecule.admin_utils import EstimatedCountPaginator
from molecule.models import ActivityLog, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "id",
        "status",
        "delivery_mode",
        "active_tasks",
        "current_task",
        "last_activity",
        "updated_at",
    )
    list_filter = ("status", "delivery_mode")
    search_fields = ("name",)
    readonly_fields = ("id", "created_at", "updated_at", "last_activity")
    exclude = ("token_hash",)
    show_full_result_count = False
    # Facet counts would count the whole table once per filter option.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator

    def get_queryset(self, request: HttpRequest):
        return Workspace.objects.with_last_activity()

    @admin.display(ordering="last_activity", description="last activity")
    def last_activity(self, obj: Workspace):
        return getattr(obj, "last_activity", None)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Workspaces register themselves and receive their token from /registry/register.
        return False

    def get_urls(self):
        return [
            path(
                "reset-phantom-busy/",
                self.admin_site.admin_view(require_POST(self.reset_phantom_busy_view)),
                name="molecule_workspace_reset_phantom_busy",
            ),
            *super().get_urls(),
        ]

    def reset_phantom_busy_view(self, request: HttpRequest) -> HttpResponseRedirect:
        from scheduler.services import PhantomBusySweepError, workspaces_reset_phantom_busy

        if not self.has_change_permission(request):
            messages.error(request, "You may not change workspaces.")
        else:
            try:
                report = workspaces_reset_phantom_busy()
            except PhantomBusySweepError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request, f"Reset {len(report.workspaces)} phantom-busy workspaces."
                )
        return HttpResponseRedirect(reverse("admin:molecule_workspace_changelist"))


@admin.register(ActivityLog)
class ActivityLogAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "workspace_id",
        "activity_type",
        "method",
        "summary",
        "status",
        "created_at",
    )
    list_filter = ("activity_type", "status")
    search_fields = ("=workspace__id", "method")
    show_full_result_count = False
    # Facet counts would count the whole table once per filter option.
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    raw_id_fields = ("workspace",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ActivityLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ActivityLog | None = None) -> bool:
        return False
