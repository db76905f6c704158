"""Declare ON DELETE CASCADE in the database, so plain-SQL workspace deletes clean up activity."""

from django.db import migrations

CASCADE_SQL = """
DO $$
DECLARE fk text;
BEGIN
    SELECT conname INTO fk FROM pg_constraint
     WHERE conrelid = 'activity_logs'::regclass AND contype = 'f'
       AND confrelid = 'workspaces'::regclass;
    EXECUTE format('ALTER TABLE activity_logs DROP CONSTRAINT %I', fk);
    EXECUTE format(
        'ALTER TABLE activity_logs ADD CONSTRAINT %I FOREIGN KEY (workspace_id) '
        'REFERENCES workspaces (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED', fk);
END $$;
"""

RESTRICT_SQL = CASCADE_SQL.replace("ON DELETE CASCADE ", "")


class Migration(migrations.Migration):
    dependencies = [("molecule", "0001_schema")]

    operations = [migrations.RunSQL(CASCADE_SQL, RESTRICT_SQL)]
