from django.core.management.base import CommandError

from credentials.management import lookups as credential_lookups
from portal.commands import PortalCommand
from webhooks import erasure
from webhooks.management import lookups


class Command(PortalCommand):
    help = (
        "Erase the payloads (request and response bodies, event data) of finished deliveries: one, a webhook's "
        "or the environment's, created in [--since, --until). Ids, times, status codes and event types stay. "
        "Without --yes it only counts."
    )
    audit_as_command = True  # recorded as "manage.py <name>"

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        parser.add_argument("--webhook", help="Only this webhook: id, or <environment>/<name>.")
        parser.add_argument("--delivery", help="Only this delivery: its webhook-id (msg_…) or id.")
        parser.add_argument("--since", help="ISO 8601; UTC unless an offset is given.")
        parser.add_argument("--until", help="ISO 8601; UTC unless an offset is given.")
        parser.add_argument("--yes", action="store_true", help="Erase for good (irreversible).")

    def handle(self, *args, **options):
        # An option given empty names nothing; read as "not given" it would widen the scope to everything.
        for option, what in EMPTY_MEANS_NOTHING.items():
            if options[option] is not None and not options[option].strip():
                raise CommandError(f"--{option} is empty: give {what}, or leave --{option} out; nothing was erased")
        environment = credential_lookups.environment(options["environment"])
        webhook = lookups.webhook(options["webhook"]) if options["webhook"] is not None else None
        try:
            delivery = erasure.find_delivery(environment, options["delivery"]) if options["delivery"] else None
        except erasure.ScopeError as error:
            raise CommandError(f"{error} Nothing was erased.") from None
        scope = erasure.Scope(
            environment,
            webhook=webhook,
            delivery=delivery,
            since=lookups.moment(options["since"], "--since"),
            until=lookups.moment(options["until"], "--until"),
        )
        if problem := scope.problem():
            raise CommandError(f"{problem} Nothing was erased.")
        count, waiting = scope.deliveries().count(), scope.waiting()
        described = scope.describe()
        if not options["yes"]:
            self.report(
                {"would_erase": count, "waiting_left_alone": waiting, "erased": 0, "scope": described},
                f"Would erase the payloads of {_deliveries(count)} ({waiting} waiting left alone): {scope.sentence()}; "
                "run again with --yes to erase them for good.",
            )
            return
        erased = erasure.erase_payloads(scope, actor=self.actor)
        self.report(
            {"erased": erased, "waiting_left_alone": waiting, "scope": described},
            f"Erased the payloads of {_deliveries(erased)} ({waiting} waiting left alone): {scope.sentence()}.",
        )


EMPTY_MEANS_NOTHING = {
    "webhook": "its id or <environment>/<name>",
    "delivery": "its webhook-id (msg_…) or id",
    "since": "an ISO 8601 date or date-time",
    "until": "an ISO 8601 date or date-time",
}


def _deliveries(count: int) -> str:
    return f"{count} deliver{'y' if count == 1 else 'ies'}"
