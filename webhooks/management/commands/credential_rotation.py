from django.core.management.base import CommandError

from credentials.management import lookups
from credentials.services import CredentialError
from portal.commands import PortalCommand
from webhooks import rotation
from webhooks.configure import WebhookError, WebhookInvalid


class Command(PortalCommand):
    help = (
        "Show the seven steps of rotating a client's credential with their live state; "
        "--do performs a portal action (add-new-to-signing, retire-old [--compromised], revoke-old-tokens, "
        "confirm-receivers)."
    )

    def add_arguments(self, parser):
        parser.add_argument("client_id")
        parser.add_argument(
            "--do",
            choices=[
                rotation.ADD_NEW_TO_SIGNING,
                rotation.RETIRE_OLD,
                rotation.REVOKE_OLD_TOKENS,
                rotation.CONFIRM_RECEIVERS,
            ],
        )
        parser.add_argument(
            "--compromised",
            action="store_true",
            help="with --do retire-old: the old credential may be compromised; revoke every token it obtained too",
        )

    def handle(self, *args, client_id, do, compromised, **options):
        client = lookups.client(client_id)
        if do:
            actions = {
                rotation.ADD_NEW_TO_SIGNING: lambda: rotation.add_new_to_signing(client, actor=self.actor),
                rotation.RETIRE_OLD: lambda: rotation.retire_old(
                    client,
                    compromised=compromised,
                    reason="rotated with manage.py credential_rotation",
                    actor=self.actor,
                ),
                rotation.REVOKE_OLD_TOKENS: lambda: rotation.revoke_old_tokens(client, actor=self.actor),
                rotation.CONFIRM_RECEIVERS: lambda: rotation.confirm_receivers(client, actor=self.actor),
            }
            try:
                actions[do]()
            except (WebhookError, WebhookInvalid, CredentialError) as error:
                raise CommandError(str(error)) from None
        state = rotation.rotation_of(client)
        data = [
            {"step": s.number, "title": s.title, "done": s.done, "state": s.state, "action": s.action or None}
            for s in state.steps
        ]
        lines = [f"Rotation of {client.name} ({client.client_id}):"] + [
            f"  [{'x' if s.done else ' '}] {s.number}. {s.title}: {s.state}" for s in state.steps
        ]
        self.report(data, "\n".join(lines))
