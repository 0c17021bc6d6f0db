from environments.management.base import PortalCommand
from webhooks import self_test
from webhooks.management import lookups


class Command(PortalCommand):
    help = (
        "Send one correctly signed and one altered test request: passes (exit 0) when the receiver accepts the "
        "first and refuses the second, fails (exit 1) otherwise."
    )

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")

    def handle(self, *args, webhook, **options):
        target = lookups.webhook(webhook)
        result = self_test.run(target, actor_label="manage.py signature_self_test")
        self.report(
            {
                "passed": result.passed,
                "verdict": result.verdict,
                "signed_answer": result.genuine.status_code if result.genuine else None,
                "altered_answer": result.tampered.status_code if result.tampered else None,
            },
            result.verdict,
        )
        if not result.passed:
            raise SystemExit(1)
