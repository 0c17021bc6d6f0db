from pathlib import Path

from django.core.management.base import CommandError

from environments.configurations import ConfigurationError, parse_schema_text, publish_document
from environments.management.base import PortalCommand
from environments.schema import SchemaInvalid


class Command(PortalCommand):
    help = (
        "Publish a schema document (JSON) as a new version of the configuration that the given environments run. "
        "All or nothing: on any error nothing changes."
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

    def handle(self, *args, file, environment, note, **options):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {file}: {getattr(error, 'strerror', None) or error}") from None
        try:
            schema = parse_schema_text(text)
        except ConfigurationError as error:
            raise CommandError(f"{file}: {error}") from None
        try:
            version = publish_document(schema, environment, note=note)
        except SchemaInvalid as error:
            raise CommandError(f"{file} is not a valid schema: {error}") from None
        except ConfigurationError as error:
            raise CommandError(str(error)) from None
        slugs = sorted(set(environment))
        self.report(
            {
                "configuration": version.configuration.slug,
                "version": version.number,
                "environments": slugs,
                "data_types": version.data_type_names,
            },
            f"Published {version.configuration.slug} version {version.number} to {', '.join(slugs)}.",
        )
