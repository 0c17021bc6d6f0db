import datetime

from django.core.management.base import CommandError
from django.utils import timezone

from credentials.management import lookups as credential_lookups
from environments.workers import silence
from portal.commands import PortalCommand
from webhooks.health import health
from webhooks.management import lookups as webhook_lookups

MAX_HOURS = 24 * 366


class Command(PortalCommand):
    help = (
        "Per webhook: deliveries, failures, waiting, p50/p95 delay from event to receipt, and state. Exits 1 "
        "when no background worker is running, or a webhook is disabled or has been failing longer than "
        "--fail-after; 0 otherwise (for cron)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", help="Only this environment (slug).")
        parser.add_argument("--hours", type=int, default=24, help=f"Window in hours, 1 to {MAX_HOURS} (default 24).")
        parser.add_argument(
            "--fail-after",
            default="1h",
            help="Exit 1 when a webhook has been failing this long (30m, 1h, 2d; default 1h) or is disabled.",
        )

    def handle(self, *args, environment, hours, fail_after, **options):
        if not 1 <= hours <= MAX_HOURS:
            raise CommandError(f"--hours must be between 1 and {MAX_HOURS}, not {hours}")
        threshold = webhook_lookups.duration(fail_after, "--fail-after")
        scope = credential_lookups.environment(environment) if environment else None
        now = timezone.now()
        rows = health(scope, window=datetime.timedelta(hours=hours))
        data = [
            {
                "environment": row.webhook.environment.slug,
                "webhook": row.webhook.name,
                "id": row.webhook.pk,
                "state": row.webhook.condition,
                "disabled_reason": row.webhook.disabled_reason or None,
                "failing_since": _iso(row.webhook.failing_since if row.webhook.condition == "failing" else None),
                "disables_at": _iso(row.webhook.disables_at),
                "needs_attention": row.webhook.condition == "disabled"
                or (row.webhook.condition == "failing" and now - row.webhook.failing_since >= threshold),
                "deliveries": row.deliveries,
                "succeeded": row.succeeded,
                "failed": row.failed,
                "waiting": row.waiting,
                "oldest_due_seconds": round(row.oldest_due_seconds, 1),
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
        attention = [d for d in data if d["needs_attention"]]
        if attention:
            names = ", ".join(f"{d['environment']}/{d['webhook']} ({d['state']})" for d in attention)
            verb = "webhooks need" if len(attention) != 1 else "webhook needs"
            lines.append(f"{len(attention)} {verb} attention: {names}")
        self.report(data, "\n".join(lines) if data else "No webhooks.")
        stopped = silence(now)
        if stopped:
            # On stderr, so that --json output keeps its shape for scripts; the exit code is the alert.
            since = f"last report {stopped.last_seen.isoformat()}" if stopped.last_seen else "none has reported in"
            if stopped.stopped:
                self.stderr.write(f"Background worker not running: nothing is being sent ({since}).")
            else:
                self.stderr.write(f"Background worker busy: deliveries are delayed ({since} from its queue).")
        if attention or stopped:
            # For cron and monitors: a non-zero exit is the alert.
            raise SystemExit(1)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None
