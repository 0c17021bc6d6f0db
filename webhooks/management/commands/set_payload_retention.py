from django.core.management.base import CommandError
from django.utils.translation import ngettext

from credentials.management import lookups as credential_lookups
from portal.commands import PortalCommand
from webhooks import erasure


class Command(PortalCommand):
    help = "How many days an environment keeps webhook payloads (bodies); 'none' keeps them as long as deliveries."
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        parser.add_argument("--days", required=True, help="1 to 36500, or none.")

    def handle(self, *args, **options):
        environment = credential_lookups.environment(options["environment"])
        text = options["days"].strip().lower()
        if text == "none":
            days = None
        elif text.isascii() and text.isdigit() and len(text) <= 6:
            days = int(text)
        else:
            raise CommandError("--days takes a whole number of days (1 to 36500) or none")
        try:
            erasure.set_payload_retention(environment, days, actor=self.actor)
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.report(
            {"environment": environment.slug, "payload_retention_days": days},
            f"{environment.name} keeps payloads "
            + (
                ngettext("%(days)d day.", "%(days)d days.", days) % {"days": days}
                if days
                else "as long as the deliveries."
            ),
        )
