from django.core.management.base import CommandError

from credentials.management import lookups as credential_lookups
from environments.management.base import PortalCommand
from webhooks.configure import WebhookFields, WebhookInvalid, create_webhook, parse_headers
from webhooks.management import lookups


class Command(PortalCommand):
    help = "Create a webhook. With the signing-secret method its whsec_ secret is printed once, here."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--url", required=True)
        parser.add_argument("--events", required=True, help="Comma-separated event types, e.g. patients.created.")
        parser.add_argument("--security", choices=["secret", "credentials"], default="secret")
        parser.add_argument("--credential", action="append", default=[], help="Credential id to sign with (repeat).")
        parser.add_argument("--no-verify-tls", action="store_true")
        parser.add_argument("--payload-format", choices=["full", "thin"], default="full")
        parser.add_argument("--max-events", type=int, default=1, help="Maximum events per request (batching).")
        parser.add_argument("--timeout", type=int, default=0, help="Seconds for the whole request.")
        parser.add_argument("--header", action="append", default=[], help='Extra header "Name: value" (repeat).')

    def handle(self, *args, **options):
        environment = credential_lookups.environment(options["environment"])
        try:
            fields = WebhookFields(
                name=options["name"],
                url=options["url"],
                event_types=[name.strip() for name in options["events"].split(",") if name.strip()],
                security_method=options["security"],
                signing_credential_ids=options["credential"],
                verify_tls=not options["no_verify_tls"],
                payload_format=options["payload_format"],
                max_events_per_request=options["max_events"],
                timeout_seconds=options["timeout"],
                extra_headers=parse_headers("\n".join(options["header"])),
            )
            webhook, secret = create_webhook(environment, fields)
        except WebhookInvalid as error:
            raise CommandError(str(error)) from None
        shown = secret if webhook.security_method == "secret" else None
        text = f"Created webhook “{webhook.name}” ({webhook.pk}) in {environment.slug}, posting to {webhook.url}."
        if shown:
            text += f"\nsigning secret: {shown}\nStore it now: it cannot be shown again."
        self.report({**lookups.describe(webhook), "signing_secret": shown}, text)
