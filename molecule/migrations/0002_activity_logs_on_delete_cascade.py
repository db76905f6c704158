"""Declare ON DELETE CASCADE in the database, so plain-SQL workspace deletes clean up activity."""

from django.db import migrations

from molecule.migrations._cascade import cascade_to_workspaces


class Migration(migrations.Migration):
    dependencies = [("molecule", "0001_schema")]

    operations = [migrations.RunSQL(*cascade_to_workspaces("activity_logs"))]
