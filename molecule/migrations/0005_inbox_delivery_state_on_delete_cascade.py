"""Declare inbox_delivery_state's ON DELETE CASCADE in the database, as 0002 does for
activity_logs: a plain-SQL workspace delete takes its delivery state with it."""

from django.db import migrations

from molecule.migrations._cascade import cascade_to_workspaces


class Migration(migrations.Migration):
    dependencies = [("molecule", "0004_inbox_delivery_state")]

    operations = [migrations.RunSQL(*cascade_to_workspaces("inbox_delivery_state"))]
