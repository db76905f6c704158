"""Declare inbox_delivery_state's ON DELETE CASCADE in the database, as 0002 does for
activity_logs: a plain-SQL workspace delete takes its delivery state with it. A migration of
its own, because Django creates the foreign key only when the migration that adds it ends.
"""

from django.db import migrations

CASCADE_SQL = """
DO $$
DECLARE fk text;
BEGIN
    SELECT conname INTO fk FROM pg_constraint
     WHERE conrelid = 'inbox_delivery_state'::regclass AND contype = 'f'
       AND confrelid = 'workspaces'::regclass;
    EXECUTE format('ALTER TABLE inbox_delivery_state DROP CONSTRAINT %I', fk);
    EXECUTE format(
        'ALTER TABLE inbox_delivery_state ADD CONSTRAINT %I FOREIGN KEY (workspace_id) '
        'REFERENCES workspaces (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED', fk);
END $$;
"""

RESTRICT_SQL = CASCADE_SQL.replace("ON DELETE CASCADE ", "")


class Migration(migrations.Migration):
    dependencies = [("molecule", "0004_inbox_delivery_state")]

    operations = [migrations.RunSQL(CASCADE_SQL, RESTRICT_SQL)]
