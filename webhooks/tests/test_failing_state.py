"""Failing is a state people see: from the first failed attempt after a success until the next success."""

import pytest

from environments.records import create_record
from environments.tests.factories import log_in_director, make_environment
from webhooks.delivery.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


@pytest.fixture
def env(client):
    environment = make_environment("clinic")
    log_in_director(client, environment)
    return environment


def deliver_one(webhook):
    create_record(webhook.environment, "patients", ADA)
    return attempt_delivery(webhook.deliveries.order_by("-id").first().pk)


def test_a_failed_attempt_makes_a_webhook_failing_everywhere_until_a_success(client, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, name="EHR bridge")
        make_webhook(env, receiver.url, name="A healthy one", event_types=["workers.created"])
        receiver.answer(503, body=b"maintenance")
        deliver_one(webhook)
        webhook.refresh_from_db()
        assert webhook.condition == "failing"

        listing = client.get("/e/clinic/webhooks/?sort=state").content.decode()
        assert "⚠ failing" in listing
        assert listing.index("EHR bridge") < listing.index("A healthy one")  # what needs attention first
        only_failing = client.get("/e/clinic/webhooks/?state=failing").content.decode()
        assert "EHR bridge" in only_failing and "A healthy one" not in only_failing
        assert "failing (1)" in only_failing

        page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
        assert "Failing</strong> since" in page
        assert "Last error: HTTP 503" in page
        assert "it is disabled at" in page
        assert "1 webhook needs attention" in page  # the environment switcher

        receiver.answer(200)
        deliver_one(webhook)
        webhook.refresh_from_db()
    assert webhook.condition == "healthy"
    assert "⚠ failing" not in client.get("/e/clinic/webhooks/").content.decode()
    assert "needs attention" not in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
