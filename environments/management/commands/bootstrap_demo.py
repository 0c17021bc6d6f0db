import os

from django.core.management.base import CommandError

from environments.configurations import ConfigurationError
from environments.demo import bootstrap_demo
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = (
        "Create the demo: a Sandbox configuration published to sandbox-test and sandbox-live, an admin user "
        "and a few records. Safe to run again: it only adds what is missing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--admin-username", default="admin")

    def handle(self, *args, admin_username, **options):
        try:
            result = bootstrap_demo(admin_username, os.environ.get("DEMO_ADMIN_PASSWORD") or None, actor=self.actor)
        except ConfigurationError as error:
            raise CommandError(str(error)) from None
        lines = [f"Created {item}." for item in result.created] or ["The demo is already in place; nothing changed."]
        if result.admin_password:
            lines.append(
                f"Admin user: {result.admin_username}  password: {result.admin_password}  (shown once; "
                "set DEMO_ADMIN_PASSWORD to choose it)"
            )
        self.report(
            {
                "created": result.created,
                "admin_username": result.admin_username,
                "admin_password": result.admin_password,
            },
            "\n".join(lines),
        )
