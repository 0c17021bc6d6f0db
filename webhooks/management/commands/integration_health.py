import datetime

from django.core.management.base import CommandError

from credentials.management import lookups as credential_lookups
from environments.management.base import PortalCommand
from webhooks.health import health

MAX_HOURS = 24 * 366


class Command(PortalCommand):
    help = "Per webhook: deliveries, failures, waiting, p50/p95 delay from event to receipt, and state."

    def add_arguments(self, parser):
        parser.add_argument("--environment", help="Only this environment (slug).")
        parser.add_argument("--hours", type=int, default=24, help=f"Window in hours, 1 to {MAX_HOURS} (default 24).")

    def handle(self, *args, environment, hours, **options):
        if not 1 <= hours <= MAX_HOURS:
            raise CommandError(f"--hours must be between 1 and {MAX_HOURS}, not {hours}")
        scope = credential_lookups.environment(environment) if environment else None
        rows = health(scope, window=datetime.timedelta(hours=hours))
        data = [
            {
                "environment": row.webhook.environment.slug,
                "webhook": row.webhook.name,
                "id": row.webhook.pk,
                "state": row.webhook.state,
                "disabled_reason": row.webhook.disabled_reason or None,
                "deliveries": row.deliveries,
                "succeeded": row.succeeded,
                "failed": row.failed,
                "waiting": row.waiting,
                "p50_delay_ms": row.p50_delay_ms,
                "p95_delay_ms": row.p95_delay_ms,
            }
            for row in rows
        ]
        header = (
            f"{'environment':<16} {'webhook':<24} {'state':<9} {'deliv':>6} {'failed':>6} {'waiting':>7} "
            f"{'p50 ms':>7} {'p95 ms':>7}"
        )
        lines = [header] + [
            f"{d['environment']:<16.16} {d['webhook']:<24.24} {d['state']:<9} {d['deliveries']:>6} {d['failed']:>6} "
            f"{d['waiting']:>7} {d['p50_delay_ms'] if d['p50_delay_ms'] is not None else '-':>7} "
            f"{d['p95_delay_ms'] if d['p95_delay_ms'] is not None else '-':>7}"
            for d in data
        ]
        self.report(data, "\n".join(lines) if data else "No webhooks.")
