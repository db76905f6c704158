"""The pending_uploads table.

Squashed from 0001_initial .. 0005_admin_search. A database those built is marked as at this
migration without running it; one migrated only part of the way must first finish them on the
release that still ships them.
"""

import datetime
import uuid

import django.contrib.postgres.fields
import django.contrib.postgres.functions
import django.contrib.postgres.indexes
import django.db.models.expressions
import django.db.models.functions.text
import django.db.models.lookups
from django.db import migrations, models

import pending_uploads.managers.admin

# Downloads read the content in 1 MiB slices (substring); with EXTERNAL storage a slice reads
# only the TOAST chunks it covers, where a compressed (EXTENDED) value is decompressed from its
# start on every read. The cost is no TOAST compression: most attachments arrive compressed.
STORAGE_EXTERNAL_SQL = "ALTER TABLE pending_uploads ALTER COLUMN content SET STORAGE EXTERNAL"
STORAGE_EXTENDED_SQL = "ALTER TABLE pending_uploads ALTER COLUMN content SET STORAGE EXTENDED"

TRANSACTION_NOW = django.contrib.postgres.functions.TransactionNow()
UNACKED = models.Q(("acked_at__isnull", True))


class Migration(migrations.Migration):
    initial = True

    replaces = [
        ("pending_uploads", "0001_initial"),
        ("pending_uploads", "0002_created_at_index"),
        ("pending_uploads", "0003_size_cap_100mib"),
        ("pending_uploads", "0004_content_storage_external"),
        ("pending_uploads", "0005_admin_search"),
    ]

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PendingUpload",
            fields=[
                ("file_id", models.UUIDField(db_default=django.contrib.postgres.functions.RandomUUID(), default=uuid.uuid4, primary_key=True, serialize=False)),
                ("workspace_id", models.UUIDField()),
                ("content", models.BinaryField()),
                ("size_bytes", models.BigIntegerField()),
                ("filename", models.TextField()),
                ("mimetype", models.TextField(blank=True, db_default="", default="")),
                ("created_at", models.DateTimeField(db_default=TRANSACTION_NOW)),
                ("fetched_at", models.DateTimeField(blank=True, null=True)),
                ("acked_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(db_default=django.db.models.expressions.CombinedExpression(TRANSACTION_NOW, "+", models.Value(datetime.timedelta(days=1))))),
                # Filename words for the admin's search, stored under a GIN index.
                ("filename_words", models.GeneratedField(db_persist=True, expression=pending_uploads.managers.admin.FilenameWords("filename"), output_field=django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None))),
            ],
            options={
                "db_table": "pending_uploads",
                "ordering": ["created_at", "file_id"],
                "indexes": [
                    models.Index(condition=UNACKED, fields=["workspace_id", "created_at"], name="pending_uploads_ws_unacked_idx"),
                    models.Index(condition=UNACKED, fields=["expires_at"], name="pending_uploads_expiry_idx"),
                    models.Index(condition=models.Q(("acked_at__isnull", False)), fields=["acked_at"], name="pending_uploads_acked_idx"),
                    models.Index(fields=["created_at", "file_id"], name="pending_uploads_created_idx"),
                    models.Index(fields=["workspace_id", "created_at"], name="pending_uploads_ws_created_idx"),
                    django.contrib.postgres.indexes.GinIndex(fields=["filename_words"], name="pending_uploads_words_idx"),
                ],
                "constraints": [
                    # Upstream's per-file cap (100 MB) is the default; the setting may only lower it.
                    models.CheckConstraint(condition=models.Q(("size_bytes__gt", 0), ("size_bytes__lte", 104857600)), name="pending_uploads_size_bytes_check"),
                    models.CheckConstraint(condition=django.db.models.lookups.Range(django.db.models.functions.text.Length("filename"), (1, 100)), name="pending_uploads_filename_check"),
                ],
            },
        ),
        migrations.RunSQL(STORAGE_EXTERNAL_SQL, STORAGE_EXTENDED_SQL),
    ]
