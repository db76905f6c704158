"""pending_uploads_expiry_idx becomes (expires_at, file_id) WHERE acked_at IS NULL.

The admin's expired filter orders by expires_at, file_id, newest first; on expires_at alone
PostgreSQL sorted every row of a tied expires_at (100,000 rows expired at one instant: 150-200
ms) to find a page. The sweep's expired arm walks the same index by its leading column.

Built without blocking uploads: the new index is created concurrently under a temporary name,
the old one dropped concurrently, then the new one takes its name, so some index serves the
sweep at every moment.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

UNACKED = models.Q(("acked_at__isnull", True))


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("pending_uploads", "0001_schema")]

    operations = [
        AddIndexConcurrently(
            model_name="pendingupload",
            index=models.Index(
                fields=["expires_at", "file_id"],
                name="pending_uploads_expiry_new_idx",
                condition=UNACKED,
            ),
        ),
        RemoveIndexConcurrently(model_name="pendingupload", name="pending_uploads_expiry_idx"),
        migrations.RenameIndex(
            model_name="pendingupload",
            new_name="pending_uploads_expiry_idx",
            old_name="pending_uploads_expiry_new_idx",
        ),
    ]
