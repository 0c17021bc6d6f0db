"""On PostgreSQL, refuse UPDATE and DELETE of audit events below the ORM as well."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION environments_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER environments_auditevent_append_only
    BEFORE UPDATE OR DELETE ON environments_auditevent
    FOR EACH ROW EXECUTE FUNCTION environments_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS environments_auditevent_append_only ON environments_auditevent;
DROP FUNCTION IF EXISTS environments_auditevent_append_only();
"""


def _run_on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("environments", "0001_initial")]

    operations = [migrations.RunPython(_run_on_postgresql(CREATE), _run_on_postgresql(DROP))]
