"""The feed's order is the id, assigned in commit order per workspace.

A BEFORE INSERT trigger takes a transaction-scoped advisory lock on the row's workspace, then
draws the id from the identity's sequence. The lock is held until the inserting transaction
ends, so a later writer of the same workspace draws its id only after the earlier one has
committed and become visible: the ids a reader can see form a prefix, and ``id > since_id``
misses nothing. Every insert gets it, the ORM's and plain SQL alike; an id the caller passes is
replaced. The index serves the feed's pages in that order. Non-atomic, so that the index is
built without blocking writes to a large table.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models

# The advisory lock's first key: a constant naming "the activity feed" ('actl' in ASCII), the
# second being hashtext(workspace_id). Two-key locks never collide with one-key ones.
FEED_LOCK_CLASS = 0x6163746C

# One statement, so that the function and its trigger come together or not at all. The
# sequence's name is looked up, not assumed, and written into the function as a constant.
CREATE_SQL = f"""
DO $do$
BEGIN
    EXECUTE format(
        $fn$
        CREATE FUNCTION activity_logs_feed_order() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            PERFORM pg_advisory_xact_lock({FEED_LOCK_CLASS}, hashtext(NEW.workspace_id::text));
            NEW.id := nextval(%L::regclass);
            RETURN NEW;
        END
        $body$
        $fn$,
        pg_get_serial_sequence('activity_logs', 'id')
    );
    CREATE TRIGGER activity_logs_feed_order BEFORE INSERT ON activity_logs
        FOR EACH ROW EXECUTE FUNCTION activity_logs_feed_order();
END
$do$
"""

DROP_SQL = """
DO $do$
BEGIN
    DROP TRIGGER activity_logs_feed_order ON activity_logs;
    DROP FUNCTION activity_logs_feed_order();
END
$do$
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("molecule", "0002_activity_logs_on_delete_cascade")]

    operations = [
        AddIndexConcurrently(
            model_name="activitylog",
            index=models.Index(fields=["workspace", "id"], name="activity_logs_ws_id_idx"),
        ),
        migrations.RunSQL(CREATE_SQL, DROP_SQL),
    ]
