"""The sealed platform_inbound_secret of push-mode forwards; NULL until the next registration."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("molecule", "0005_inbox_delivery_state_on_delete_cascade")]

    operations = [
        migrations.AddField(
            model_name="workspace",
            name="platform_inbound_secret_sealed",
            field=models.TextField(editable=False, null=True),
        ),
    ]
