"""Indexes for the Audit page at millions of events (environments/audit_log.py): newest first overall, per
environment and per action, each ending in (occurred_at, id) so a page is read in order; and on PostgreSQL a
trigram index (pg_trgm, a trusted extension: the database's owner may create it) for the actor filter, part
of a name in any case, as Django writes it: UPPER(actor_label::text) LIKE UPPER('%…%')."""

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

TRIGRAMS = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS audit_actor_trigrams ON environments_auditevent
    USING gin (UPPER(actor_label::text) gin_trgm_ops);
"""
NO_TRIGRAMS = "DROP INDEX IF EXISTS audit_actor_trigrams;"


def _run_on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("environments", "0008_beat_lease"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["-occurred_at", "-id"], name="audit_newest"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["environment", "-occurred_at", "-id"], name="audit_environment_newest"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["action", "-occurred_at", "-id"], name="audit_action_newest"),
        ),
        migrations.RunPython(_run_on_postgresql(TRIGRAMS), _run_on_postgresql(NO_TRIGRAMS)),
        # What the new indexes make redundant.
        migrations.RemoveIndex(model_name="auditevent", name="audit_by_environment"),
        migrations.AlterField(model_name="auditevent", name="action", field=models.CharField(max_length=64)),
        migrations.AlterField(
            model_name="auditevent",
            name="occurred_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
    ]
