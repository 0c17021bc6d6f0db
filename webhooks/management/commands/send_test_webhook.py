from django.core.management.base import CommandError

from environments.management.base import PortalCommand
from environments.templatetags.display import duration
from webhooks.management import lookups
from webhooks.manual import send_test


class Command(PortalCommand):
    help = "Send a webhook.test event to a webhook now and show what came back. Exits 1 if it was not received."

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")

    def handle(self, *args, webhook, **options):
        target = lookups.webhook(webhook)
        attempt = send_test(target, actor_label="manage.py send_test_webhook")
        result = {
            "webhook": target.pk,
            "message_id": attempt.delivery.message_id,
            "received": attempt.succeeded,
            "status_code": attempt.status_code,
            "error": attempt.error or None,
            "error_detail": attempt.error_detail or None,
            "duration_ms": attempt.duration_ms,
            "response_excerpt": attempt.response_body[:500],
        }
        outcome = f"answered {attempt.status_code}" if attempt.status_code else f"failed: {attempt.error_detail}"
        took = duration(attempt.duration_ms)
        self.report(result, f"{target.name}: {outcome} in {took} ({attempt.delivery.message_id}).")
        if not attempt.succeeded:
            raise CommandError(f"the test delivery to {target.name} was not received ({outcome})")
