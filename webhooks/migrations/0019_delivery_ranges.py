"""On PostgreSQL, deliveries become partitioned by ranges of id and their event links by `delivery_id` on the
same bounds (webhooks/delivery_ranges.py). The message id and the per-webhook sequence keep their indexes
without a unique constraint, which a table partitioned by id could only give together with the id.

The conversion copies both tables under a lock (README, Production: stop workers first; its duration is in
`make bench`, scenario `partitions`). On SQLite the tables stay plain.
"""

from django.db import migrations, models


def to_ranges(apps, schema_editor):
    from webhooks.ranges_conversion import to_ranges

    to_ranges(schema_editor.connection)


def to_plain(apps, schema_editor):
    from webhooks.ranges_conversion import to_plain

    to_plain(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("environments", "0009_audit_indexes"),
        ("webhooks", "0018_attempt_hour_by_hour"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="deliveryevent",
            name="delivery_event_sequence",
        ),
        migrations.AlterField(
            model_name="delivery",
            name="message_id",
            field=models.CharField(db_index=True, max_length=40),
        ),
        migrations.AddIndex(
            model_name="deliveryevent",
            index=models.Index(
                condition=models.Q(("sequence__isnull", False)),
                fields=["webhook", "sequence"],
                name="delivery_event_sequence",
            ),
        ),
        migrations.RunPython(to_ranges, to_plain),
    ]
