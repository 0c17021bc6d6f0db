import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction

from environments.access import ADMIN, ROLE_LABELS
from environments.models import Environment
from people.directory import create_person, grant_role
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = "Give a user a role: admin (all environments) or program_director / viewer in one environment."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLE_LABELS))
        parser.add_argument("--environment", metavar="SLUG", help="Required for program_director and viewer.")
        parser.add_argument(
            "--create", action="store_true", help="Create the user if missing, with a generated password shown once."
        )

    def handle(self, *args, username, role, environment, create, **options):
        # The People page's functions (people/directory.py): the same checks and audit events.
        password = None
        env = None
        if role != ADMIN:
            if not environment:
                raise CommandError(f"--environment is required for the {role} role")
            env = Environment.objects.filter(slug=environment).first()
            if env is None:
                raise CommandError(f"unknown environment: {environment}")
        with transaction.atomic():
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                if not create:
                    raise CommandError(f'no user "{username}"; add --create to create it')
                password = secrets.token_urlsafe(12)
                try:
                    user = create_person(self.actor, username, password=password)
                except ValueError as error:
                    raise CommandError(str(error)[0].lower() + str(error)[1:].rstrip(".")) from None
            grant_role(self.actor, user, role, env)
        where = env.slug if env is not None else "all environments"
        text = f"{username} is {ROLE_LABELS[role]} in {where}."
        if password:
            text += f"\nCreated {username} with password: {password}  (shown once)"
        self.report({"username": username, "role": role, "environment": environment, "password": password}, text)
