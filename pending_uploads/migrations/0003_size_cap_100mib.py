# Upstream raised its per-file cap to 100 MB (104857600 bytes); the CHECK carries the default.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pending_uploads", "0002_created_at_index"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="pendingupload",
            name="pending_uploads_size_bytes_check",
        ),
        migrations.AddConstraint(
            model_name="pendingupload",
            constraint=models.CheckConstraint(
                condition=models.Q(("size_bytes__gt", 0), ("size_bytes__lte", 104857600)),
                name="pending_uploads_size_bytes_check",
            ),
        ),
    ]
