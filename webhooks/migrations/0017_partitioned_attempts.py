"""Attempts carry their webhook, and on PostgreSQL the attempts table becomes partitioned by month.

The conversion copies the table under a lock (README, Production: stop workers first; 155 s for 10 M
attempts on a loaded 2-core VM, `benchmarks/partitions.py`). On SQLite the table stays plain and the
webhook is filled in place.
"""

import django.db.models.deletion
from django.db import migrations, models


def fill_and_partition(apps, schema_editor):
    from webhooks.attempts_conversion import to_partitioned

    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        to_partitioned(connection)
    else:
        schema_editor.execute(
            "UPDATE webhooks_attempt SET webhook_id = "
            "(SELECT webhook_id FROM webhooks_delivery WHERE webhooks_delivery.id = webhooks_attempt.delivery_id)"
        )


def unpartition(apps, schema_editor):
    from webhooks.attempts_conversion import to_plain

    to_plain(schema_editor.connection)


def _attempt_named_without_constraint():
    return models.ForeignKey(
        blank=True,
        db_constraint=False,
        null=True,
        on_delete=django.db.models.deletion.SET_NULL,
        related_name="+",
        to="webhooks.attempt",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0016_receiver_auth"),
    ]

    operations = [
        migrations.AddField(
            model_name="attempt",
            name="webhook",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="webhooks.webhook",
            ),
        ),
        migrations.AlterField(
            model_name="manualsend",
            name="attempt",
            field=_attempt_named_without_constraint(),
        ),
        migrations.AlterField(
            model_name="manualsend",
            name="altered_attempt",
            field=_attempt_named_without_constraint(),
        ),
        migrations.RunPython(fill_and_partition, unpartition),
        migrations.AlterField(
            model_name="attempt",
            name="webhook",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="webhooks.webhook",
            ),
        ),
        migrations.AddIndex(
            model_name="attempt",
            index=models.Index(fields=["webhook", "started_at"], name="attempt_by_webhook"),
        ),
    ]
