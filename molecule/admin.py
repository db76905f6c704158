"""Admin for workspaces and the activity log."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from molecule.admin_utils import LargeTableAdmin, MachineWrittenAdmin, json_pretty, short_uuid
from molecule.models import ActivityLog, Workspace

# The header, the browser title and the index page name the product, not "Django".
admin.site.site_header = "Molecule uploads administration"
admin.site.site_title = "Molecule uploads admin"
admin.site.index_title = "Workspaces, pending uploads and jobs"
# The app sidebar takes 300 px of every page; the lists need them to fit 1280 px.
admin.site.enable_nav_sidebar = False

# Written by the agent or the service, never by an operator: registration writes the id, name,
# delivery mode, push URL and token; heartbeats write active_tasks and current_task (and set
# the status online); the database writes the timestamps. Saving an edited copy would race a
# heartbeat, and the Reset phantom-busy button is the one supported way to clear a busy count.
# Only the status stays editable: an operator may mark a workspace removed or offline (the next
# registration or heartbeat sets it online again).
WORKSPACE_MACHINE_FIELDS = (
    "id",
    "name",
    "delivery_mode",
    "url",
    "active_tasks",
    "current_task",
    "created_at",
    "updated_at",
    "last_activity",
    "last_acked_seq",
)


@admin.register(Workspace)
class WorkspaceAdmin(LargeTableAdmin):
    list_display = (
        "name",
        "short_id",
        "status",
        "delivery_mode",
        "active_tasks",
        "current_task",
        "last_activity",
        "last_acked_seq",
        "updated_at",
    )
    list_filter = ("status", "delivery_mode")
    search_fields = ("name",)
    fields = ("status", *WORKSPACE_MACHINE_FIELDS)
    readonly_fields = WORKSPACE_MACHINE_FIELDS

    def get_queryset(self, request: HttpRequest):
        # The delivery state joins on its primary key: one LEFT JOIN, no query per row.
        return Workspace.objects.with_last_activity().select_related("delivery_state")

    @admin.display(ordering="last_activity", description="last activity")
    def last_activity(self, obj: Workspace):
        return getattr(obj, "last_activity", None)

    @admin.display(ordering="delivery_state__last_acked_seq", description="last acked seq")
    def last_acked_seq(self, obj: Workspace) -> int:
        # No delivery state yet: the poller never acknowledged anything.
        state = getattr(obj, "delivery_state", None)
        return 0 if state is None else state.last_acked_seq

    @admin.display(ordering="id", description="id")
    def short_id(self, obj: Workspace) -> str:
        return short_uuid(obj.id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Workspaces register themselves and receive their token from /registry/register.
        return False


@admin.register(ActivityLog)
class ActivityLogAdmin(MachineWrittenAdmin):
    list_display = (
        "id",
        "workspace_link",
        "activity_type",
        "method",
        "summary",
        "status",
        "created",
    )
    list_filter = ("activity_type", "status")
    search_fields = ("=workspace__id", "method")
    raw_id_fields = ("workspace",)
    # The bodies are shown from PostgreSQL's text of them, never parsed in Python: a body
    # nested as deep as the API accepts would overflow json.loads under the admin's stack.
    exclude = ("request_body", "response_body")
    readonly_fields = ("request_body_json", "response_body_json")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .defer("request_body", "response_body")
            .annotate(
                request_body_text=Cast("request_body", TextField()),
                response_body_text=Cast("response_body", TextField()),
            )
        )

    @admin.display(description="request body")
    def request_body_json(self, obj: ActivityLog) -> SafeString | str:
        return _json_block(getattr(obj, "request_body_text", None))

    @admin.display(description="response body")
    def response_body_json(self, obj: ActivityLog) -> SafeString | str:
        return _json_block(getattr(obj, "response_body_text", None))


def _json_block(text: str | None) -> SafeString | str:
    if text is None:
        return "-"
    return format_html('<pre class="json">{}</pre>', json_pretty(text))
