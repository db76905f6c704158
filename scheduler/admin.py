"""The workspace list's Reset phantom-busy button, and django-q2's task pages fit to 1280 px."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.template.defaultfilters import pluralize, truncatechars
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_POST

# Imported here so that its registrations exist to be replaced below: the scheduler's admin
# module is discovered before django_q's (INSTALLED_APPS order), which then does not run again.
from django_q import admin as django_q_admin
from django_q.models import Failure, OrmQ, Schedule, Success, Task

from molecule.admin import WorkspaceAdmin
from molecule.admin_utils import compact_time
from molecule.durations import format_duration
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


# --- django-q2's task pages ------------------------------------------------------------------
# Its own admins list every field, with dotted paths, long cluster names and
# "Dec. 6, 2026, 7:42 a.m." dates that do not wrap: 1,180 px of table in a 930 px box. These
# subclasses keep its querysets, actions and read-only forms, and list fewer, shorter columns.

TASK_CHANGE_LIST = "admin/scheduler/task_change_list.html"


def dotted_path(path: str | None) -> SafeString | str:
    """A dotted path that may wrap after each dot."""
    if not path:
        return "-"
    return format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in path.split(".")))


class TaskListColumns:
    """The columns every task list shares: the function and group, wrapping after a dot."""

    change_list_template = TASK_CHANGE_LIST

    @staticmethod
    def _read(obj: Any, name: str) -> Any:
        # A queued task (OrmQ) unpacks its signed payload in methods of these names.
        value = getattr(obj, name)
        return value() if callable(value) else value

    @admin.display(description="function")
    def function(self, obj: Any) -> SafeString | str:
        return dotted_path(self._read(obj, "func"))

    @admin.display(description="group")
    def task_group(self, obj: Any) -> SafeString | str:
        return dotted_path(self._read(obj, "group"))


class RunColumns(TaskListColumns):
    """Successful and failed runs: when, how long, and what came back."""

    list_display = ("name", "function", "task_group", "started_at", "took", "short_result")

    @admin.display(description="started", ordering="started")
    def started_at(self, obj: Task) -> SafeString | str:
        return compact_time(obj.started)

    @admin.display(description="took")
    def took(self, obj: Task) -> str:
        return format_duration(obj.time_taken())

    @admin.display(description="result")
    def short_result(self, obj: Task) -> str:
        return truncatechars(str(obj.result), 100)


class ScheduleListAdmin(TaskListColumns, django_q_admin.ScheduleAdmin):
    list_display = ("name", "function", "every", "next_run_at", "get_last_run", "get_success")
    list_display_links = ("name",)
    list_filter = ("schedule_type", "next_run")

    @admin.display(description="schedule", ordering="schedule_type")
    def every(self, obj: Schedule) -> str:
        if obj.schedule_type == Schedule.MINUTES and obj.minutes:
            return f"every {format_duration(timedelta(minutes=obj.minutes))}"
        if obj.schedule_type == Schedule.CRON:
            return obj.cron or "cron"
        return obj.get_schedule_type_display().lower()

    @admin.display(description="next run", ordering="next_run")
    def next_run_at(self, obj: Schedule) -> SafeString | str:
        return compact_time(obj.next_run)


class SuccessListAdmin(RunColumns, django_q_admin.TaskAdmin):
    pass


class FailureListAdmin(RunColumns, django_q_admin.FailAdmin):
    pass


class QueueListAdmin(TaskListColumns, django_q_admin.QueueAdmin):
    list_display = ("name", "function", "task_group", "locked_until")

    @admin.display(description="locked until", ordering="lock")
    def locked_until(self, obj: OrmQ) -> SafeString | str:
        return compact_time(obj.lock)


for model, model_admin in (
    (Schedule, ScheduleListAdmin),
    (Success, SuccessListAdmin),
    (Failure, FailureListAdmin),
    (OrmQ, QueueListAdmin),
):
    # The queue page exists only with the ORM broker, as django-q2 decides.
    if admin.site.is_registered(model):
        admin.site.unregister(model)
        admin.site.register(model, model_admin)
