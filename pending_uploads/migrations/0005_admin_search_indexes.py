# The admin's searches at a million rows: a workspace's rows newest first (acked ones too),
# and whole filename words on a GIN index. Numbered 0005 to leave 0004 to lane B; the lead
# renumbers at merge.

import django.contrib.postgres.indexes
import pending_uploads.managers.admin
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pending_uploads", "0003_size_cap_100mib"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="pendingupload",
            index=models.Index(
                fields=["workspace_id", "created_at"], name="pending_uploads_ws_created_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="pendingupload",
            index=django.contrib.postgres.indexes.GinIndex(
                pending_uploads.managers.admin.FilenameWords("filename"),
                name="pending_uploads_words_idx",
            ),
        ),
    ]
