from django.core.management.base import CommandError

from credentials.management import lookups
from credentials.services import CredentialError, create_client
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = "Create a client (an app or integration) in an environment, with its scopes."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--environment", required=True, metavar="SLUG")
        parser.add_argument(
            "--scope", action="append", required=True, dest="scopes", help="e.g. patients:read; repeat for several"
        )

    def handle(self, *args, name, environment, scopes, **options):
        env = lookups.environment(environment)
        try:
            client = create_client(env, name, scopes, actor=self.actor)
        except CredentialError as error:
            raise CommandError(str(error)) from None
        self.report(
            {"client_id": client.client_id, "name": client.name, "environment": env.slug, "scopes": client.scopes},
            f"Created client “{client.name}” in {env.slug}: client_id {client.client_id}",
        )
