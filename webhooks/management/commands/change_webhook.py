import argparse

from django.core.management.base import CommandError

from portal.commands import PortalCommand
from webhooks.configure import WebhookInvalid, fields_of, update_webhook
from webhooks.lines import sending_policy
from webhooks.management import lookups
from webhooks.options import OPTIONS, OptionInvalid


class Command(PortalCommand):
    help = (
        "Change a webhook: only the options given change (audited, with the same checks as the form). "
        "Numbers are taken as typed: 0 is refused where create_webhook reads it as the default, "
        "except --max-per-second 0 (or none), which removes the rate limit."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("webhook", help="Webhook id, or <environment>/<name>.")
        # No defaults: a flag not given leaves what the webhook has.
        unset = argparse.SUPPRESS
        parser.add_argument("--name", default=unset)
        parser.add_argument("--url", default=unset)
        parser.add_argument(
            "--events", default=unset, help="Comma-separated event types: the whole list it receives from now on."
        )
        parser.add_argument("--security", choices=["secret", "credentials", "ed25519"], default=unset)
        parser.add_argument(
            "--credential", action="append", default=unset, help="Credential id to sign with (repeat: the whole list)."
        )
        parser.add_argument(
            "--client",
            default=unset,
            help='client_id of the API client it serves (reads its numbered events); --client "" serves none.',
        )
        for option in OPTIONS:  # declared once, in webhooks/options.py
            flag_options = {**option.flag_options, "default": unset}
            if option.flag_options.get("type") is int:
                flag_options["help"] = option.help  # not create_webhook's "0: the default": a count is as typed
            if option.flag_options.get("action") == "append":
                flag_options["help"] = (
                    f"{flag_options.get('help', '')} Replaces what the webhook has; "
                    f'{option.flag} "" alone resets it to the default.'
                )
            parser.add_argument(option.flag, dest=option.name, **flag_options)
            if option.flag.startswith("--no-") and option.flag_options.get("action") == "store_true":
                # A switch create_webhook can only turn off must be able to go back on here.
                parser.add_argument(
                    "--" + option.flag.removeprefix("--no-"),
                    dest=option.name,
                    action="store_false",
                    default=unset,
                    help=f"Undo {option.flag}.",
                )

    def handle(self, *args, webhook, **options):
        target = lookups.webhook(webhook)
        fields = fields_of(target)
        before = lookups.describe(target)
        for name, given in (("name", "name"), ("url", "url"), ("security_method", "security"), ("client_id", "client")):
            if given in options:
                setattr(fields, name, options[given])
        if "events" in options:
            fields.event_types = [name.strip() for name in options["events"].split(",") if name.strip()]
        if "credential" in options:
            fields.signing_credential_ids = [pk for pk in options["credential"] if pk.strip()]
        for option in OPTIONS:
            if option.name not in options:
                continue
            given = options[option.name]
            if option.flag_options.get("action") == "append":
                given = [line for line in given if line.strip()]
            try:
                # A count is the count typed (create_webhook's "0: the default" would hide a mistake here).
                value = given if option.flag_options.get("type") is int else option.from_flag(given)
            except OptionInvalid as error:
                raise CommandError(f"{option.flag}: {error}") from None
            setattr(fields, option.name, value)
        try:
            update_webhook(target, fields, actor=self.actor)
        except WebhookInvalid as error:
            raise CommandError(str(error)) from None
        target.refresh_from_db()
        after = lookups.describe(target)
        self.report(
            after,
            f"{'Changed' if after != before else 'Nothing to change: already as given:'} webhook “{target.name}” "
            f"({target.pk}) in {target.environment.slug}, posting to {target.url}; it sends {sending_policy(target)}.",
        )
