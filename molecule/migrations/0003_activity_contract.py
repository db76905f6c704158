"""The activity feed's upstream contract: the missing row fields, and the (created_at, seq) index."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("molecule", "0002_activity_logs_on_delete_cascade")]

    operations = [
        migrations.AddField(
            model_name="activitylog",
            name="source_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="activitylog",
            name="target_id",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="activitylog",
            name="response_body",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="activitylog",
            name="duration_ms",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="activitylog",
            name="error_detail",
            field=models.TextField(blank=True, null=True),
        ),
        # Same name, one more column: (workspace_id, created_at) is a prefix of the new key, so
        # every query the old index served keeps an index.
        migrations.RemoveIndex(model_name="activitylog", name="activity_logs_ws_created_idx"),
        migrations.AddIndex(
            model_name="activitylog",
            index=models.Index(
                fields=["workspace", "created_at", "id"], name="activity_logs_ws_created_idx"
            ),
        ),
    ]
