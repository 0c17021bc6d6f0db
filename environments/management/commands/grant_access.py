import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction

from environments.access import ADMIN, ROLE_LABELS
from environments.audit import record_audit
from environments.models import Environment, Grant
from portal.commands import PortalCommand
from portal.inputs import username_problem


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
        User = get_user_model()
        password = None
        with transaction.atomic():
            user = User.objects.filter(username=username).first()
            if user is None:
                if not create:
                    raise CommandError(f'no user "{username}"; add --create to create it')
                problem = username_problem(username)
                if problem:
                    raise CommandError(f"the username {problem}")
                password = secrets.token_urlsafe(12)
                user = User.objects.create_user(username, password=password)
                record_audit(self.actor, "user.created", target=user)
            if role == ADMIN:
                user.is_superuser = True
                user.is_staff = True
                user.save(update_fields=["is_superuser", "is_staff"])
                record_audit(self.actor, "user.role_granted", target=user, details={"role": ADMIN})
                where = "all environments"
            else:
                if not environment:
                    raise CommandError(f"--environment is required for the {role} role")
                env = Environment.objects.filter(slug=environment).first()
                if env is None:
                    raise CommandError(f"unknown environment: {environment}")
                Grant.objects.update_or_create(user=user, environment=env, defaults={"role": role})
                record_audit(self.actor, "user.role_granted", target=user, environment=env, details={"role": role})
                where = env.slug
        text = f"{username} is {ROLE_LABELS[role]} in {where}."
        if password:
            text += f"\nCreated {username} with password: {password}  (shown once)"
        self.report({"username": username, "role": role, "environment": environment, "password": password}, text)
