from portal.commands import PortalCommand
from webhooks import self_test
from webhooks.management import lookups
from webhooks.management.waiting import add_wait_argument, finished


class Command(PortalCommand):
    help = (
        "Have a background worker send one correctly signed and one altered test request, and wait for the verdict: "
        "passes (exit 0) when the receiver accepts the first and refuses the second, fails (exit 1) otherwise, or "
        "when no worker ran it within --wait."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")
        add_wait_argument(parser)

    def handle(self, *args, webhook, wait, **options):
        target = lookups.webhook(webhook)
        send = finished(
            self_test.run(target, actor=self.actor),
            wait,
            f"the signature self-test of {target.name}",
        )
        result = self_test.result_of(send)
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
