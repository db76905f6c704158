# Downloads read the content in 1 MiB slices (substring); with EXTERNAL storage a slice reads
# only the TOAST chunks it covers, where a compressed (EXTENDED) value is decompressed from its
# start on every read. The cost is no TOAST compression: most attachments arrive compressed.
# Only rows written after this migration are stored uncompressed; older ones still read right.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("pending_uploads", "0003_size_cap_100mib"),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE pending_uploads ALTER COLUMN content SET STORAGE EXTERNAL",
            reverse_sql="ALTER TABLE pending_uploads ALTER COLUMN content SET STORAGE EXTENDED",
        ),
    ]
