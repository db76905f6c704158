"""Workspaces and their activity log: the platform state that agents report and poll."""

import uuid

from django.contrib.postgres.functions import TransactionNow
from django.db import models

from molecule.managers import ActivityLogManager, WorkspaceManager
from molecule.totals import MetricTotalManager


class Workspace(models.Model):
    class Status(models.TextChoices):
        ONLINE = "online"
        OFFLINE = "offline"
        REMOVED = "removed"

    class DeliveryMode(models.TextChoices):
        POLL = "poll"
        PUSH = "push"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.TextField(default="", db_default="", blank=True)
    status = models.TextField(choices=Status, default=Status.ONLINE, db_default=Status.ONLINE)
    delivery_mode = models.TextField(
        choices=DeliveryMode, default=DeliveryMode.PUSH, db_default=DeliveryMode.PUSH
    )
    # NULL, not '': the contract says a push URL is absent for poll-mode workspaces.
    url = models.TextField(null=True, blank=True)  # noqa: DJ001
    active_tasks = models.IntegerField(default=0, db_default=0)
    current_task = models.TextField(default="", db_default="", blank=True)
    # SHA-256 of the bearer token; the token itself is shown once at registration.
    token_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(db_default=TransactionNow(), editable=False)
    updated_at = models.DateTimeField(db_default=TransactionNow(), editable=False)

    objects = WorkspaceManager()

    class Meta:
        db_table = "workspaces"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(active_tasks__gte=0), name="workspaces_active_tasks_check"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["online", "offline", "removed"]),
                name="workspaces_status_check",
            ),
            models.CheckConstraint(
                condition=models.Q(delivery_mode__in=["poll", "push"]),
                name="workspaces_delivery_mode_check",
            ),
        ]

    def __str__(self) -> str:
        return self.name or str(self.id)


class ActivityLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    # ON DELETE CASCADE is also declared in the database (migration 0002), for plain-SQL deletes.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="activity", db_column="workspace_id"
    )
    activity_type = models.TextField()
    method = models.TextField(default="", db_default="", blank=True)
    summary = models.TextField(default="", db_default="", blank=True)
    request_body = models.JSONField(null=True, blank=True)
    status = models.TextField(default="ok", db_default="ok", blank=True)
    created_at = models.DateTimeField(db_default=TransactionNow(), editable=False)

    objects = ActivityLogManager()

    class Meta:
        db_table = "activity_logs"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="activity_logs_ws_created_idx"),
            # The retention sweep walks this in created_at order (migration 0005).
            models.Index(fields=["created_at"], name="activity_logs_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.activity_type} #{self.id}"


class MetricTotal(models.Model):
    """A database-backed metric value: a counter's running total, or a gauge set by a sweep.

    Sweeps add to their counters in the same statement as their DELETE or UPDATE, so the
    totals equal the rows changed whichever process did it; /metrics reads this table.
    """

    # The exported family name (a counter without its _total suffix).
    metric = models.TextField()
    # The value of the family's one label ('' when it has none; 'le' bound for histograms).
    label = models.TextField(default="", db_default="", blank=True)
    value = models.FloatField(default=0, db_default=0)
    updated_at = models.DateTimeField(db_default=TransactionNow(), editable=False)

    objects = MetricTotalManager()

    class Meta:
        db_table = "metric_totals"
        constraints = [
            models.UniqueConstraint(
                fields=["metric", "label"], name="metric_totals_metric_label_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric}{{{self.label}}} = {self.value:g}"
