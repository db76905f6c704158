"""ON DELETE CASCADE declared in the database for a table's foreign key to workspaces.

Django creates a foreign key only when the migration that adds it ends, and declares no
ON DELETE in the database; a migration of its own rewrites it, so plain-SQL workspace deletes
take the table's rows with them. (The loader skips modules whose names start with "_".)
"""


def cascade_to_workspaces(table: str) -> tuple[str, str]:
    """The SQL that makes ``table``'s foreign key to workspaces cascade, and its reverse."""
    forward = f"""
DO $$
DECLARE fk text;
BEGIN
    SELECT conname INTO fk FROM pg_constraint
     WHERE conrelid = '{table}'::regclass AND contype = 'f'
       AND confrelid = 'workspaces'::regclass;
    EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', fk);
    EXECUTE format(
        'ALTER TABLE {table} ADD CONSTRAINT %I FOREIGN KEY (workspace_id) '
        'REFERENCES workspaces (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED', fk);
END $$;
"""
    return forward, forward.replace("ON DELETE CASCADE ", "")
