"""The platform's schema: workspaces, activity_logs and metric_totals.

Squashed from 0001_initial, 0003_activity_contract, 0004_counter_totals and
0005_activity_logs_created_idx. A database those built is marked as at this migration without
running it; one migrated only part of the way must first finish them on the release that still
ships them. 0002 stays a migration of its own: it rewrites the foreign key that Django creates
only when a migration ends.
"""

import uuid

import django.contrib.postgres.functions
import django.db.models.deletion
from django.db import migrations, models

TRANSACTION_NOW = django.contrib.postgres.functions.TransactionNow()


class Migration(migrations.Migration):
    initial = True

    replaces = [
        ("molecule", "0001_initial"),
        ("molecule", "0003_activity_contract"),
        ("molecule", "0004_counter_totals"),
        ("molecule", "0005_activity_logs_created_idx"),
    ]

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Workspace",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, primary_key=True, serialize=False)),
                ("name", models.TextField(blank=True, db_default="", default="")),
                ("status", models.TextField(choices=[("online", "Online"), ("offline", "Offline"), ("removed", "Removed")], db_default="online", default="online")),
                ("delivery_mode", models.TextField(choices=[("poll", "Poll"), ("push", "Push")], db_default="push", default="push")),
                ("url", models.TextField(blank=True, null=True)),
                ("active_tasks", models.IntegerField(db_default=0, default=0)),
                ("current_task", models.TextField(blank=True, db_default="", default="")),
                ("token_hash", models.CharField(editable=False, max_length=64)),
                ("created_at", models.DateTimeField(db_default=TRANSACTION_NOW, editable=False)),
                ("updated_at", models.DateTimeField(db_default=TRANSACTION_NOW, editable=False)),
            ],
            options={
                "db_table": "workspaces",
                "ordering": ["name"],
                "constraints": [
                    models.CheckConstraint(condition=models.Q(("active_tasks__gte", 0)), name="workspaces_active_tasks_check"),
                    models.CheckConstraint(condition=models.Q(("status__in", ["online", "offline", "removed"])), name="workspaces_status_check"),
                    models.CheckConstraint(condition=models.Q(("delivery_mode__in", ["poll", "push"])), name="workspaces_delivery_mode_check"),
                ],
            },
        ),
        migrations.CreateModel(
            name="ActivityLog",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("activity_type", models.TextField()),
                ("method", models.TextField(blank=True, db_default="", default="")),
                ("summary", models.TextField(blank=True, db_default="", default="")),
                ("request_body", models.JSONField(blank=True, null=True)),
                ("status", models.TextField(blank=True, db_default="ok", default="ok")),
                ("created_at", models.DateTimeField(db_default=TRANSACTION_NOW, editable=False)),
                ("workspace", models.ForeignKey(db_column="workspace_id", on_delete=django.db.models.deletion.CASCADE, related_name="activity", to="molecule.workspace")),
                ("source_id", models.UUIDField(blank=True, null=True)),
                ("target_id", models.UUIDField(blank=True, null=True)),
                ("response_body", models.JSONField(blank=True, null=True)),
                ("duration_ms", models.IntegerField(blank=True, null=True)),
                ("error_detail", models.TextField(blank=True, null=True)),
            ],
            options={
                "db_table": "activity_logs",
                "ordering": ["-id"],
                "indexes": [
                    # (workspace_id, created_at, id) is the feed's cursor order.
                    models.Index(fields=["workspace", "created_at", "id"], name="activity_logs_ws_created_idx"),
                    # The retention sweep walks rows in created_at order.
                    models.Index(fields=["created_at"], name="activity_logs_created_idx"),
                ],
            },
        ),
        migrations.CreateModel(
            name="MetricTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("metric", models.TextField()),
                ("label", models.TextField(blank=True, db_default="", default="")),
                ("value", models.FloatField(db_default=0, default=0)),
                ("updated_at", models.DateTimeField(db_default=TRANSACTION_NOW, editable=False)),
            ],
            options={
                "db_table": "metric_totals",
                "constraints": [models.UniqueConstraint(fields=("metric", "label"), name="metric_totals_metric_label_key")],
            },
        ),
    ]
