"""Workspaces and their activity log: the platform state that agents report and poll."""

import uuid

from django.contrib.postgres.functions import TransactionNow
from django.db import models

from molecule.managers import ActivityLogManager, InboxDeliveryStateManager, WorkspaceManager
from molecule.totals import MetricTotalManager
from molecule.usage import WorkspaceUsageManager


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
    # The platform_inbound_secret, which the platform presents to the workspace on a forward.
    # It must be sent again, so it cannot be a hash: it is sealed (molecule/sealing.py) with
    # keys derived from SECRET_KEY. NULL until minted. The admin never shows it.
    platform_inbound_secret_sealed = models.TextField(null=True, editable=False)  # noqa: DJ001
    # The token before the last rotation, accepted until the new one is first used or this
    # overlap ends, so a rotation whose answer was lost does not lock the workspace out.
    previous_token_hash = models.CharField(max_length=64, null=True, editable=False)  # noqa: DJ001
    previous_token_expires_at = models.DateTimeField(null=True, editable=False)
    created_at = models.DateTimeField(db_default=TransactionNow(), editable=False)
    updated_at = models.DateTimeField(db_default=TransactionNow(), editable=False)

    objects = WorkspaceManager()

    # Set by WorkspaceManager.authenticate(): the caller is the operator (ADMIN_TOKEN), not the
    # workspace itself; or the workspace with its token from before the last rotation.
    by_admin_token = False
    by_previous_token = False

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
    class Type(models.TextChoices):
        A2A_SEND = "a2a_send"
        A2A_RECEIVE = "a2a_receive"
        TASK_UPDATE = "task_update"
        AGENT_LOG = "agent_log"
        SKILL_PROMOTION = "skill_promotion"
        MEMORY_WRITE = "memory_write"
        ERROR = "error"

    # Also the row's ``seq`` and the feed's order. A trigger (migration 0003) assigns it from
    # the identity's sequence under a per-workspace lock held until commit, so within one
    # workspace ids are handed out in commit order and the committed ids are always a
    # prefix: a row can never appear behind a cursor. An id passed by the caller is replaced.
    id = models.BigAutoField(primary_key=True)
    # ON DELETE CASCADE is also declared in the database (migration 0002), for plain-SQL deletes.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="activity", db_column="workspace_id"
    )
    activity_type = models.TextField()
    # NULL means the canvas (a user) wrote the row; an agent's rows carry its workspace id.
    source_id = models.UUIDField(null=True, blank=True)
    target_id = models.UUIDField(null=True, blank=True)
    method = models.TextField(default="", db_default="", blank=True)
    summary = models.TextField(default="", db_default="", blank=True)
    request_body = models.JSONField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    status = models.TextField(default="ok", db_default="ok", blank=True)
    # NULL, not '': upstream sends null for a row without an error.
    error_detail = models.TextField(null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(db_default=TransactionNow(), editable=False)

    objects = ActivityLogManager()

    class Meta:
        db_table = "activity_logs"
        ordering = ["-id"]
        indexes = [
            # The feed's order after the workspace: the cursor page and the newest-first page
            # are both one range scan.
            models.Index(fields=["workspace", "id"], name="activity_logs_ws_id_idx"),
            # A workspace's rows by time: phantom-busy's NOT EXISTS probe and the admin's last
            # activity read the newest one.
            models.Index(
                fields=["workspace", "created_at", "id"], name="activity_logs_ws_created_idx"
            ),
            # The retention sweep walks this in created_at order.
            models.Index(fields=["created_at"], name="activity_logs_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.activity_type} #{self.id}"

    @property
    def seq(self) -> int:
        return self.id


class InboxDeliveryState(models.Model):
    """How far a workspace's poller has acknowledged its feed: every row up to last_acked_seq.

    Written only by POST /workspaces/<id>/activity/ack, which moves it forward, never back.
    The retention sweep deletes acknowledged rows after the soft horizon; a workspace without
    a row counts as 0 (nothing acknowledged).
    """

    # ON DELETE CASCADE is also declared in the database (migration 0005), for plain-SQL deletes.
    workspace = models.OneToOneField(
        Workspace,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="delivery_state",
        db_column="workspace_id",
    )
    last_acked_seq = models.BigIntegerField(default=0, db_default=0)
    updated_at = models.DateTimeField(db_default=TransactionNow(), editable=False)

    objects = InboxDeliveryStateManager()

    class Meta:
        db_table = "inbox_delivery_state"

    def __str__(self) -> str:
        return f"{self.workspace_id} acked through {self.last_acked_seq}"


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


class WorkspaceUsage(models.Model):
    """One workspace's use of one windowed quota in one fixed window (molecule.quotas)."""

    id = models.BigAutoField(primary_key=True)
    # No foreign key: a counter is deleted with its window, whatever became of the workspace.
    workspace_id = models.UUIDField()
    # molecule.quotas names: "activity_bytes", "uploads".
    quota = models.TextField()
    window_start = models.DateTimeField()
    amount = models.BigIntegerField(default=0, db_default=0)

    objects = WorkspaceUsageManager()

    class Meta:
        db_table = "workspace_usage"
        constraints = [
            models.UniqueConstraint(
                fields=["workspace_id", "quota", "window_start"], name="workspace_usage_key"
            )
        ]
        indexes = [
            # The prune deletes ended windows.
            models.Index(fields=["window_start"], name="workspace_usage_window_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.workspace_id} {self.quota} @ {self.window_start:%Y-%m-%d %H:%M} = {self.amount}"
        )
