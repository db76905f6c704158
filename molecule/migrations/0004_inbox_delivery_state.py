"""inbox_delivery_state: each workspace's acknowledged position in its activity feed."""

import django.contrib.postgres.functions
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("molecule", "0003_activity_feed_order")]

    operations = [
        migrations.CreateModel(
            name="InboxDeliveryState",
            fields=[
                (
                    "workspace",
                    models.OneToOneField(
                        db_column="workspace_id",
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="delivery_state",
                        serialize=False,
                        to="molecule.workspace",
                    ),
                ),
                ("last_acked_seq", models.BigIntegerField(db_default=0, default=0)),
                (
                    "updated_at",
                    models.DateTimeField(
                        db_default=django.contrib.postgres.functions.TransactionNow(),
                        editable=False,
                    ),
                ),
            ],
            options={"db_table": "inbox_delivery_state"},
        ),
    ]
