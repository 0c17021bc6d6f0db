from django.conf import settings
from django.utils.translation import ngettext

from portal.commands import PortalCommand
from webhooks.management import lookups
from webhooks.retention import prune_deliveries


class Command(PortalCommand):
    help = "Delete finished deliveries (and their attempts) older than the retention. Waiting ones are kept."

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            default=f"{settings.DELIVERY_RETENTION_DAYS}d",
            help="Age such as 90d, 12h or 30m (default: DELIVERY_RETENTION_DAYS).",
        )

    def handle(self, *args, older_than, **options):
        age = lookups.duration(older_than, "--older-than")
        deleted = prune_deliveries(age)
        self.report(
            {"deleted": deleted, "older_than": older_than},
            ngettext(
                "Deleted %(count)d delivery older than %(age)s.",
                "Deleted %(count)d deliveries older than %(age)s.",
                deleted,
            )
            % {"count": deleted, "age": older_than},
        )
