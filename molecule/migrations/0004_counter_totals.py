"""metric_totals: database-backed counters and gauges that every process adds to."""

import django.contrib.postgres.functions
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("molecule", "0003_activity_contract"),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricTotal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("metric", models.TextField()),
                ("label", models.TextField(blank=True, db_default="", default="")),
                ("value", models.FloatField(db_default=0, default=0)),
                (
                    "updated_at",
                    models.DateTimeField(
                        db_default=django.contrib.postgres.functions.TransactionNow(),
                        editable=False,
                    ),
                ),
            ],
            options={"db_table": "metric_totals"},
        ),
        migrations.AddConstraint(
            model_name="metrictotal",
            constraint=models.UniqueConstraint(
                fields=("metric", "label"), name="metric_totals_metric_label_key"
            ),
        ),
    ]
