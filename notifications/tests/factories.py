"""Occasions to tell people about, each reached through the same code paths production uses."""

from environments.records import create_record
from webhooks.delivery.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def make_failing_webhook(environment, **options):
    """A webhook whose receiver answered 503 to its one delivery: failing since now."""
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, **options)
        receiver.answer(503, body=b"maintenance")
        create_record(environment, "patients", ADA)
        attempt_delivery(webhook.deliveries.order_by("-id").first().pk)
    webhook.refresh_from_db()
    assert webhook.condition == "failing"
    return webhook
