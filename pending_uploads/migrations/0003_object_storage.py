"""Bytes in a bucket: content becomes nullable, the row names its object, and the sweep's outbox.

The CHECK is added NOT VALID and then validated: validation scans the table under a lock that
lets reads and writes go on, where a plain ADD CONSTRAINT would block them for the whole scan.
"""

import django.contrib.postgres.functions
from django.db import migrations, models

BYTES_CHECK = models.CheckConstraint(
    condition=models.Q(
        models.Q(("content__isnull", True), ("storage_key__isnull", False)),
        models.Q(("content__isnull", False), ("storage_key__isnull", True)),
        _connector="OR",
    ),
    name="pending_uploads_bytes_check",
)

ADD_CHECK_SQL = """
ALTER TABLE pending_uploads ADD CONSTRAINT pending_uploads_bytes_check
      CHECK ((content IS NULL AND storage_key IS NOT NULL)
             OR (content IS NOT NULL AND storage_key IS NULL)) NOT VALID;
ALTER TABLE pending_uploads VALIDATE CONSTRAINT pending_uploads_bytes_check;
"""
DROP_CHECK_SQL = "ALTER TABLE pending_uploads DROP CONSTRAINT pending_uploads_bytes_check"


class Migration(migrations.Migration):
    dependencies = [
        ("pending_uploads", "0002_expiry_idx_file_id"),
    ]

    operations = [
        migrations.CreateModel(
            name="ObjectDeletion",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("key", models.TextField()),
                ("created_at", models.DateTimeField(db_default=django.contrib.postgres.functions.TransactionNow())),
            ],
            options={
                "db_table": "pending_uploads_object_deletions",
                "ordering": ["id"],
            },
        ),
        migrations.AddField(
            model_name="pendingupload",
            name="content_sha256",
            field=models.BinaryField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="pendingupload",
            name="storage_key",
            field=models.TextField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="pendingupload",
            name="content",
            field=models.BinaryField(null=True),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD_CHECK_SQL, DROP_CHECK_SQL)],
            state_operations=[migrations.AddConstraint(model_name="pendingupload", constraint=BYTES_CHECK)],
        ),
    ]
