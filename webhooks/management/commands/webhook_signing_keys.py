from django.core.management.base import CommandError
from django.utils import timezone

from portal.commands import PortalCommand
from webhooks.configure import WebhookError, signing_keys_of, stop_old_keys
from webhooks.management import lookups


class Command(PortalCommand):
    help = (
        "List a webhook's signing keys (hints, never the keys) and until when each signs. --stop-old-now ends a "
        "rotation's grace period at once, for a leak: only the current key signs from then on (audited)."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")
        parser.add_argument(
            "--stop-old-now",
            action="store_true",
            help="Stop signing with the old secret (or key pair) now instead of at the end of its grace period.",
        )

    def handle(self, *args, webhook, stop_old_now, **options):
        target = lookups.webhook(webhook)
        stopped = []
        if stop_old_now:
            try:
                stopped = stop_old_keys(target, actor=self.actor)
            except WebhookError as error:
                raise CommandError(str(error)) from None
        now = timezone.now()
        keys = [
            {
                "hint": key.public_key or f"{key.hint}…",
                "created_at": key.created_at.isoformat(),
                "signing": key.is_signing_at(now),
                "signs_until": key.retires_at.isoformat() if key.retires_at else None,
            }
            for key in signing_keys_of(target)
        ]
        lines = [
            f"{key['hint']}  created {key['created_at']}  "
            + (
                "signing" + (f" until {key['signs_until']}" if key["signs_until"] else "")
                if key["signing"]
                else f"retired {key['signs_until']}"
            )
            for key in keys
        ] or [f"{target.name} signs with credentials, not keys of its own."]
        if stopped:
            lines.insert(
                0, f"{target.name}: {len(stopped)} old key{'s' if len(stopped) != 1 else ''} stopped signing now."
            )
        self.report({"webhook": target.pk, "stopped": len(stopped), "keys": keys}, "\n".join(lines))
