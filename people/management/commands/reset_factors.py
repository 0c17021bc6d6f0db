from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from people.factors import reset_factors
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = (
        "Remove a person's second factors (authenticator app, passkeys, recovery codes) and sign them out: for "
        "the last Admin who lost their phone. They set up a new one at their next sign-in. Audited."
    )
    audit_as_command = True

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        # The People page's function (people/factors.py): the same audit event.
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f'no user "{username}"')
        reset_factors(self.actor, user)
        self.report(
            {"username": username, "reset": True}, f"{username}'s second factors are removed and they are signed out."
        )
