from django.core.management.base import CommandError

from credentials.management import lookups as credential_lookups
from environments.management.base import PortalCommand
from webhooks import erasure
from webhooks.management import lookups
from webhooks.models import Delivery


class Command(PortalCommand):
    help = (
        "Erase the payloads (request and response bodies, event data) of finished deliveries: one, a webhook's "
        "or the environment's, created in [--since, --until). Ids, times, status codes and event types stay. "
        "Without --yes it only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        parser.add_argument("--webhook", help="Only this webhook: id, or <environment>/<name>.")
        parser.add_argument("--delivery", help="Only this delivery: its webhook-id (msg_…).")
        parser.add_argument("--since", help="ISO 8601; UTC unless an offset is given.")
        parser.add_argument("--until", help="ISO 8601; UTC unless an offset is given.")
        parser.add_argument("--yes", action="store_true", help="Erase for good (irreversible).")

    def handle(self, *args, **options):
        environment = credential_lookups.environment(options["environment"])
        webhook = lookups.webhook(options["webhook"]) if options["webhook"] else None
        if webhook is not None and webhook.environment_id != environment.pk:
            raise CommandError(f"webhook {webhook.name} is not in {environment.slug}")
        delivery = None
        if options["delivery"]:
            delivery = Delivery.objects.filter(environment=environment, message_id=options["delivery"]).first()
            if delivery is None:
                raise CommandError(f"no delivery {options['delivery'][:60]} in {environment.slug}")
        scope = erasure.Scope(
            environment,
            webhook=webhook,
            delivery=delivery,
            since=lookups.moment(options["since"], "--since"),
            until=lookups.moment(options["until"], "--until"),
        )
        if problem := scope.problem():
            raise CommandError(problem)
        count, waiting = scope.deliveries().count(), scope.waiting()
        if not options["yes"]:
            self.report(
                {"would_erase": count, "waiting_left_alone": waiting, "erased": 0},
                f"Would erase the payloads of {count} deliveries ({waiting} waiting left alone); "
                "run again with --yes to erase them for good.",
            )
            return
        erased = erasure.erase_payloads(scope, actor_label="manage.py erase_payloads")
        self.report(
            {"erased": erased, "waiting_left_alone": waiting},
            f"Erased the payloads of {erased} deliveries ({waiting} waiting left alone).",
        )
