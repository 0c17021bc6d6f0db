from django.core.management.base import CommandError

from environments.templatetags.display import duration
from portal.commands import PortalCommand
from webhooks.management import lookups
from webhooks.management.waiting import add_wait_argument, finished
from webhooks.manual import send_test


class Command(PortalCommand):
    help = (
        "Have a background worker send a webhook.test event to a webhook now, wait for it and show what came back. "
        "Exits 1 if it was not received, or if no worker sent it within --wait."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")
        add_wait_argument(parser)

    def handle(self, *args, webhook, wait, **options):
        target = lookups.webhook(webhook)
        send = send_test(target, actor=self.actor)
        send = finished(send, wait, f"the test delivery to {target.name} ({send.delivery.message_id})")
        attempt = send.attempt
        result = {
            "webhook": target.pk,
            "message_id": send.delivery.message_id,
            "received": attempt.succeeded,
            "status_code": attempt.status_code,
            "error": attempt.error or None,
            "error_detail": attempt.error_detail or None,
            "duration_ms": attempt.duration_ms,
            "response_excerpt": attempt.response_body[:500],
        }
        outcome = f"answered {attempt.status_code}" if attempt.status_code else f"failed: {attempt.error_detail}"
        took = duration(attempt.duration_ms)
        self.report(result, f"{target.name}: {outcome} in {took} ({send.delivery.message_id}).")
        if not attempt.succeeded:
            raise CommandError(f"the test delivery to {target.name} was not received ({outcome})")
