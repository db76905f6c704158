"""The workspace list's Reset phantom-busy button: the scheduler's sweep, run by an operator."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from molecule.admin import WorkspaceAdmin
from molecule.models import Workspace
from scheduler.services import PhantomBusySweepError, workspaces_reset_phantom_busy


class PhantomBusyWorkspaceAdmin(WorkspaceAdmin):
    change_list_template = "admin/scheduler/workspace_change_list.html"

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
        if not self.has_change_permission(request):
            messages.error(request, "You may not change workspaces.")
        else:
            try:
                report = workspaces_reset_phantom_busy()
            except PhantomBusySweepError as exc:
                messages.error(request, str(exc))
            else:
                count = len(report.workspaces)
                messages.success(
                    request, f"Reset {count} phantom-busy workspace{pluralize(count)}."
                )
        return HttpResponseRedirect(reverse("admin:molecule_workspace_changelist"))


# molecule's admin registers the workspace list; the scheduler adds its button here, so that
# the dependency runs one way (the scheduler uses molecule's workspaces, never the reverse).
admin.site.unregister(Workspace)
admin.site.register(Workspace, PhantomBusyWorkspaceAdmin)
