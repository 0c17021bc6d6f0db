from django.core.management.base import CommandError
from django.utils.translation import ngettext

from portal.commands import PortalCommand
from webhooks.management import lookups
from webhooks.manual import ResendRefused, retry_now


class Command(PortalCommand):
    help = "Send a webhook's waiting deliveries now, oldest first, instead of at their scheduled retry (audited)."
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")

    def handle(self, *args, webhook, **options):
        target = lookups.webhook(webhook)
        try:
            count = retry_now(target, actor=self.actor)
        except ResendRefused as error:
            raise CommandError(str(error)) from None
        self.report(
            {"webhook": target.pk, "deliveries": count},
            f"{target.name}: "
            + ngettext(
                "%(count)d waiting delivery is being sent now.",
                "%(count)d waiting deliveries are being sent now, oldest first.",
                count,
            )
            % {"count": count},
        )
