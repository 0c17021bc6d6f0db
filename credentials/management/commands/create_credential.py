import datetime

from django.core.management.base import CommandError

from credentials.management import lookups
from credentials.services import CredentialError, create_credential
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = "Create a credential (client secret) for a client. The secret is printed once, here, and never again."

    def add_arguments(self, parser):
        parser.add_argument("client_id")
        parser.add_argument("--name", required=True)
        parser.add_argument("--expires", metavar="YYYY-MM-DD", help="The credential stops working that day (UTC).")

    def handle(self, *args, client_id, name, expires, **options):
        client = lookups.client(client_id)
        expires_at = None
        if expires:
            try:
                expires_at = datetime.datetime.combine(
                    datetime.date.fromisoformat(expires), datetime.time(), tzinfo=datetime.UTC
                )
            except ValueError:
                raise CommandError(f"--expires must be a date as YYYY-MM-DD, not {expires!r}") from None
        try:
            credential, secret = create_credential(client, name, expires_at=expires_at, actor=self.actor)
        except CredentialError as error:
            raise CommandError(str(error)) from None
        self.report(
            {**lookups.describe(credential), "client_secret": secret},
            f"Created credential “{credential.name}” ({credential.id}) for {client.name}.\n"
            f"client_id:     {client.client_id}\n"
            f"client_secret: {secret}\n"
            "Store the secret now: it cannot be shown again.",
        )
