"""Debugging deliveries: search by error class and URL, ranges that must make sense, readable bodies and durations."""

import pytest

from environments.records import create_record
from environments.tests.factories import log_in_director, make_environment
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


@pytest.fixture
def env(client):
    environment = make_environment("clinic")
    log_in_director(client, environment)
    return environment


def send_one(webhook) -> Delivery:
    create_record(webhook.environment, "patients", ADA)
    delivery = webhook.deliveries.order_by("-id").first()
    attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def listed(client, query: str) -> str:
    return client.get(f"/e/clinic/deliveries/?{query}").content.decode()


def test_search_finds_deliveries_by_error_class_and_by_url(client, env):
    with Receiver() as good, Receiver(Answer(status=500)) as failing:
        to_good = make_webhook(env, good.url + "/ehr", name="EHR")
        to_failing = make_webhook(env, failing.url + "/billing", name="Billing")
        create_record(env, "patients", ADA)
        ok = to_good.deliveries.get()
        failed = to_failing.deliveries.get()
        attempt_delivery(ok.pk)
        attempt_delivery(failed.pk)
    with Receiver() as gone:
        refused_hook = make_webhook(env, gone.url + "/gone", name="Gone", event_types=["workers.created"])
    create_record(env, "workers", {"name": "Grace Hopper", "email": "grace@example.org"})
    refused = refused_hook.deliveries.get()
    attempt_delivery(refused.pk)  # the receiver has stopped: connection refused

    by_error = listed(client, "q=refused")
    assert refused.message_id in by_error and ok.message_id not in by_error and failed.message_id not in by_error
    by_url = listed(client, "q=/billing")
    assert failed.message_id in by_url and ok.message_id not in by_url
    nothing = listed(client, "q=nonsense")
    assert "No delivery matches “nonsense”." in nothing and "a webhook's name or part of its URL" in nothing


def test_search_finds_deliveries_by_webhook_name_and_by_port(client, env):
    billing = make_webhook(env, "http://127.0.0.1:8443/hooks", name="Billing bridge")
    ehr = make_webhook(env, "http://127.0.0.1:9443/hooks", name="EHR")
    create_record(env, "patients", ADA)
    to_billing, to_ehr = billing.deliveries.get(), ehr.deliveries.get()

    for query in ("q=Billing", "q=billing+bridge", "q=:8443", "q=8443"):
        page = listed(client, query)
        assert to_billing.message_id in page and to_ehr.message_id not in page, query
    page = listed(client, "q=EHR")
    assert to_ehr.message_id in page and to_billing.message_id not in page
    webhook_page = client.get(f"/e/clinic/webhooks/{billing.pk}/deliveries/?q=8443").content.decode()
    assert to_billing.message_id in webhook_page
    assert "No delivery matches “²²²”." in listed(client, "q=²²²")


def test_an_inverted_range_is_refused_with_what_to_do(client, env):
    page = listed(client, "since=2026-03-10T00:00&until=2026-03-01T00:00")
    assert "“To” (2026-03-01 00:00) is before “From” (2026-03-10 00:00): swap them" in page


def test_bodies_are_laid_out_and_durations_read_in_units(client, env):
    with Receiver(Answer(body=b'{"received":true,"ids":[1,2]}', delay=1.2)) as receiver:
        delivery = send_one(make_webhook(env, receiver.url))
    page = client.get(f"/e/clinic/deliveries/{delivery.pk}/").content.decode()
    assert "{\n  &quot;id&quot;: &quot;evt_" in page  # the payload, indented
    assert "&quot;ids&quot;: [\n    1,\n    2\n  ]" in page  # the response body, indented
    assert 'data-copy-target="payload"' in page
    seconds = f"{delivery.last_duration_ms / 1000:.1f} s"
    assert f"in {seconds} to" in page
    assert seconds in listed(client, "")


def test_the_event_type_filter_offers_the_environments_types(client, env):
    page = listed(client, "")
    assert '<option value="patients.created">patients.created</option>' in page
    assert "Select a valid choice" in listed(client, "event_type=patients.exploded")
