from django.core.management.base import CommandError

from credentials.management import lookups
from credentials.services import CredentialError, credentials_of
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = "List an environment's credentials (never their secrets)."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, metavar="SLUG")
        parser.add_argument("--search", default="")

    def handle(self, *args, environment, search, **options):
        env = lookups.environment(environment)
        try:
            rows = [lookups.describe(c) for c in credentials_of(env, search=search)]
        except CredentialError as error:
            raise CommandError(str(error)) from None
        lines = [
            f"{r['id']}  {r['state']:<11}  {r['client']} / {r['name']}  ({r['hint']}…)  "
            f"last used: {r['last_used_at'] or 'never'}"
            for r in rows
        ] or [f"No credentials in {env.slug}."]
        self.report(rows, "\n".join(lines))
