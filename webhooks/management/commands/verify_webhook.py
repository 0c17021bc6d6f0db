from django.core.management.base import CommandError
from django.utils.translation import ngettext

from portal.commands import PortalCommand
from webhooks import lifecycle, verification
from webhooks.configure import WebhookError
from webhooks.management import lookups
from webhooks.management.waiting import add_wait_argument, finished


class Command(PortalCommand):
    help = (
        "Have a background worker send a webhook's URL verification challenge now and wait for the answer (exit 1 "
        "unless the receiver answers it, or when no worker sent it within --wait), or with "
        "--waive REASON let an unverified webhook send without proof (audited)."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")
        parser.add_argument("--waive", metavar="REASON", help="Waive verification for this webhook, saying why.")
        add_wait_argument(parser)

    def handle(self, *args, webhook, waive, wait, **options):
        target = lookups.webhook(webhook)
        if waive is not None:
            try:
                # Waivers from here have always been recorded as "system", not as "manage.py verify_webhook".
                count = lifecycle.waive_verification(target, waive)
            except WebhookError as error:
                raise CommandError(str(error)) from None
            self.report(
                {"verified": False, "waived": True, "state": target.state, "waiting_sent": count},
                f"Verification of {target.name} waived; "
                + ngettext("%(count)d waiting delivery goes.", "%(count)d waiting deliveries go.", count)
                % {"count": count},
            )
            return
        outcome = finished(
            verification.verify(target, actor=self.actor),
            wait,
            f"the verification challenge to {target.name}",
        )
        target.refresh_from_db()
        self.report(
            {"verified": outcome.passed, "result": outcome.result, "state": target.state},
            f"{'Verified' if outcome.passed else 'Not verified'}: {outcome.result}.",
        )
        if not outcome.passed:
            raise SystemExit(1)
