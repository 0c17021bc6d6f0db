from django.core.management.base import CommandError

from credentials.management import lookups as credential_lookups
from portal.commands import PortalCommand
from webhooks.promotion import PromotionRefused, plan_lines, plan_promotion, promote, promoted_as_json


class Command(PortalCommand):
    help = (
        "Promote webhooks (and the API clients they serve) from one environment to another that shares its "
        "configuration. Without --yes it prints the draft and creates nothing; new secrets are printed once."
    )
    audit_as_command = True

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="source", required=True, help="Environment slug to promote from.")
        parser.add_argument("--to", dest="target", required=True, help="Environment slug to promote to.")
        parser.add_argument(
            "--webhook", action="append", default=[], help="Webhook name or id (repeat); all of them when omitted."
        )
        parser.add_argument("--yes", action="store_true", help="Create what the draft lists.")

    def handle(self, *args, **options):
        source = credential_lookups.environment(options["source"])
        target = credential_lookups.environment(options["target"])
        try:
            plan = plan_promotion(source, target, options["webhook"])
            if not options["yes"]:
                if plan.problems:
                    raise PromotionRefused("; ".join(plan.problems))
                self.report(
                    {"draft": plan_lines(plan), "created": False},
                    "\n".join([*plan_lines(plan), "Nothing created: run again with --yes to promote."]),
                )
                return
            created = promote(plan, actor=self.actor)
        except PromotionRefused as error:
            raise CommandError(str(error)) from None
        lines = [*plan_lines(plan), "Created:"]
        for each in created:
            lines.append(f"- “{each.webhook.name}” ({each.webhook.pk}), {each.webhook.get_state_display().lower()}")
            if each.signing_secret:
                lines.append(f"  signing secret: {each.signing_secret}")
            if each.client_secret:
                lines.append(f"  client {each.client.client_id} secret: {each.client_secret}")
        lines.append("Store the secrets now: they cannot be shown again.")
        self.report(promoted_as_json(plan, created), "\n".join(lines))
