from django.core.management.base import CommandError

from credentials.management import lookups as credential_lookups
from portal.commands import PortalCommand
from webhooks.configure import WebhookFields, WebhookInvalid, create_webhook
from webhooks.lines import sending_policy
from webhooks.management import lookups
from webhooks.options import OPTIONS, OptionInvalid


class Command(PortalCommand):
    help = "Create a webhook. With the signing-secret method its whsec_ secret is printed once, here."

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--url", required=True)
        parser.add_argument("--events", required=True, help="Comma-separated event types, e.g. patients.created.")
        parser.add_argument("--security", choices=["secret", "credentials", "ed25519"], default="secret")
        parser.add_argument("--credential", action="append", default=[], help="Credential id to sign with (repeat).")
        parser.add_argument(
            "--client", default=None, help="client_id of the API client it serves (reads its numbered events)."
        )
        for option in OPTIONS:  # declared once, in webhooks/options.py
            parser.add_argument(option.flag, dest=option.name, **option.flag_options)

    def handle(self, *args, **options):
        environment = credential_lookups.environment(options["environment"])
        values = {}
        for option in OPTIONS:
            try:
                values[option.name] = option.from_flag(options[option.name])
            except OptionInvalid as error:
                raise CommandError(f"{option.flag}: {error}") from None
        try:
            fields = WebhookFields(
                name=options["name"],
                url=options["url"],
                event_types=[name.strip() for name in options["events"].split(",") if name.strip()],
                security_method=options["security"],
                signing_credential_ids=options["credential"],
                client_id=options["client"],
                **values,
            )
            webhook, secret = create_webhook(environment, fields, actor=self.actor)
        except WebhookInvalid as error:
            raise CommandError(str(error)) from None
        shown = secret if webhook.security_method == "secret" else None
        text = (
            f"Created webhook “{webhook.name}” ({webhook.pk}) in {environment.slug}, posting to {webhook.url}; "
            f"it sends {sending_policy(webhook)}."
        )
        if shown:
            text += f"\nsigning secret: {shown}\nStore it now: it cannot be shown again."
        described = lookups.describe(webhook)
        for public_key in described.get("public_keys", []):
            text += f"\npublic key: {public_key} (receivers verify v1a signatures with it; it is not a secret)"
        self.report({**described, "signing_secret": shown}, text)
