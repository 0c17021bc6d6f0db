from django.core.management.base import CommandError

from credentials.management import lookups
from credentials.services import CredentialError, revoke_tokens
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = "Revoke at once every live access token of a credential, or of every credential of a client."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--credential", metavar="CREDENTIAL_ID")
        target.add_argument("--client", metavar="CLIENT_ID")
        parser.add_argument("--reason", default="")

    def handle(self, *args, credential, client, reason, **options):
        target = lookups.credential(credential) if credential else lookups.client(client)
        try:
            count = (
                revoke_tokens(credential=target, reason=reason, actor=self.actor)
                if credential
                else revoke_tokens(client=target, reason=reason, actor=self.actor)
            )
        except CredentialError as error:
            raise CommandError(str(error)) from None
        self.report({"revoked": count}, f"Revoked {count} access token{'s' if count != 1 else ''} of “{target.name}”.")
