from django.conf import settings
from django.core.management.base import CommandError
from django.utils.translation import ngettext

from environments import outbox
from environments.models import Environment
from portal.commands import PortalCommand


class Command(PortalCommand):
    help = (
        "How many days an environment keeps events in its stream (the events feed); --default uses "
        "EVENT_RETENTION_DAYS. An event a delivery still references stays until that delivery is pruned."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        days = parser.add_mutually_exclusive_group(required=True)
        days.add_argument("--days", help="1 to 36500.")
        days.add_argument("--default", action="store_true", help="Use EVENT_RETENTION_DAYS.")

    def handle(self, *args, **options):
        environment = Environment.objects.filter(slug=options["environment"]).first()
        if environment is None:
            raise CommandError(f"unknown environment: {options['environment']}")
        days = None if options["default"] else _days(options["days"])
        try:
            outbox.set_event_retention(environment, days, actor=self.actor)
        except ValueError as error:
            raise CommandError(str(error)) from None
        effective = outbox.retention_days(environment)
        self.report(
            {"environment": environment.slug, "event_retention_days": days, "effective_days": effective},
            f"{environment.name} keeps events "
            + ngettext("%(days)d day", "%(days)d days", effective) % {"days": effective}
            + (f" (the default, EVENT_RETENTION_DAYS={settings.EVENT_RETENTION_DAYS})." if days is None else "."),
        )


def _days(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6):
        raise CommandError("--days takes a whole number of days (1 to 36500); --default uses EVENT_RETENTION_DAYS")
    return int(text)
