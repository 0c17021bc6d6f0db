from pathlib import Path

from django.core.management.base import CommandError

from environments.configurations import (
    ConfigurationError,
    RecordsLeftInvalid,
    parse_schema_text,
    publish_document,
)
from environments.models import Environment
from environments.publish_preview import changes_for
from environments.schema import SchemaInvalid, validate_schema
from environments.schema_diff import SchemaChange
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = (
        "Publish a schema document (JSON) as a new version of the configuration that the given environments run, "
        "and say what changes for their integrators (each change, breaking or compatible). "
        "All or nothing: on any error nothing changes. Refused if existing records would fail the new schema "
        "(the error says how many and which fields) unless --accept-invalid-records is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the schema document, JSON.")
        parser.add_argument(
            "--environment",
            action="append",
            required=True,
            metavar="SLUG",
            help="Environment to publish to; repeat for several (they must share a configuration).",
        )
        parser.add_argument("--note", default="", help="What changed, for the version list.")
        parser.add_argument(
            "--accept-invalid-records",
            action="store_true",
            help="Publish even though existing records would fail the new schema; they stay as they are, "
            "and a PATCH may still change them field by field.",
        )

    def handle(self, *args, file, environment, note, accept_invalid_records, **options):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {file}: {getattr(error, 'strerror', None) or error}") from None
        try:
            schema = parse_schema_text(text)
        except ConfigurationError as error:
            raise CommandError(f"{file}: {error}") from None
        try:
            validate_schema(schema)
            # Against what each environment runs now, so read before the publish changes it.
            running = Environment.objects.select_related("published_version").filter(slug__in=environment)
            changes = changes_for(schema, running)
            version, impact = publish_document(
                schema, environment, note=note, accept_invalid_records=accept_invalid_records, actor=self.actor
            )
        except SchemaInvalid as error:
            raise CommandError(f"{file} is not a valid schema: {error}") from None
        except RecordsLeftInvalid as error:
            raise CommandError(
                f"{error}; nothing was published (add --accept-invalid-records to publish anyway)"
            ) from None
        except ConfigurationError as error:
            raise CommandError(str(error)) from None
        slugs = sorted(set(environment))
        self.report(
            {
                "configuration": version.configuration.slug,
                "version": version.number,
                "environments": slugs,
                "data_types": version.data_type_names,
                "invalid_records": impact.as_json(),
                "changes": [
                    {"data_type": c.data_type, "field": c.field, "change": c.description, "breaking": c.breaking}
                    for c in changes
                ],
            },
            f"Published {version.configuration.slug} version {version.number} to {', '.join(slugs)}."
            + (f" Left invalid (accepted): {impact.summary()}." if impact else "")
            + _changes_text(changes),
        )


def _changes_text(changes: list[SchemaChange]) -> str:
    if not changes:
        return "\nNothing changes for integrators."
    lines = [f"  {change.verdict:<10} {change}" for change in changes]
    return "\nWhat changes for integrators:\n" + "\n".join(lines)
