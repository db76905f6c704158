"""activity_logs (created_at): the retention sweep walks it in created_at order."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("molecule", "0004_counter_totals"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="activitylog",
            index=models.Index(fields=["created_at"], name="activity_logs_created_idx"),
        ),
    ]
