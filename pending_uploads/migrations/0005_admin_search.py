# The admin's searches at a million rows: filename words as a stored generated column under a
# GIN index, and a workspace's rows newest first (acked ones too). Adding the column rewrites
# the table once.

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import pending_uploads.managers.admin
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('pending_uploads', '0004_content_storage_external'),
    ]

    operations = [
        migrations.AddField(
            model_name='pendingupload',
            name='filename_words',
            field=models.GeneratedField(db_persist=True, expression=pending_uploads.managers.admin.FilenameWords('filename'), output_field=django.contrib.postgres.fields.ArrayField(base_field=models.TextField(), size=None)),
        ),
        migrations.AddIndex(
            model_name='pendingupload',
            index=models.Index(fields=['workspace_id', 'created_at'], name='pending_uploads_ws_created_idx'),
        ),
        migrations.AddIndex(
            model_name='pendingupload',
            index=django.contrib.postgres.indexes.GinIndex(fields=['filename_words'], name='pending_uploads_words_idx'),
        ),
    ]
