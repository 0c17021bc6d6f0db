from django.core.management.base import CommandError

from credentials.management import lookups
from credentials.services import CredentialError, invalidate_credential
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = (
        "Invalidate a credential: it can no longer obtain access tokens. Tokens it already obtained stay valid "
        "until they expire; use revoke_tokens to end them too."
    )

    def add_arguments(self, parser):
        parser.add_argument("credential_id")
        parser.add_argument("--reason", default="")

    def handle(self, *args, credential_id, reason, **options):
        credential = lookups.credential(credential_id)
        try:
            invalidate_credential(credential, reason=reason, actor=self.actor)
        except CredentialError as error:
            raise CommandError(str(error)) from None
        self.report(
            lookups.describe(credential),
            f"Invalidated “{credential.name}”. Tokens it already obtained stay valid until they expire.",
        )
