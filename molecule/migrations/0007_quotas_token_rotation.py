"""Per-workspace quota windows (workspace_usage), and the token a rotation replaced."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("molecule", "0006_workspace_platform_inbound_secret")]

    operations = [
        migrations.CreateModel(
            name="WorkspaceUsage",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("workspace_id", models.UUIDField()),
                ("quota", models.TextField()),
                ("window_start", models.DateTimeField()),
                ("amount", models.BigIntegerField(db_default=0, default=0)),
            ],
            options={
                "db_table": "workspace_usage",
                "indexes": [
                    models.Index(fields=["window_start"], name="workspace_usage_window_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("workspace_id", "quota", "window_start"),
                        name="workspace_usage_key",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="workspace",
            name="previous_token_hash",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name="workspace",
            name="previous_token_expires_at",
            field=models.DateTimeField(editable=False, null=True),
        ),
    ]
