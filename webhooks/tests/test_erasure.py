"""Payload erasure and retention: metadata stays, bodies go, waiting deliveries are never touched."""

import datetime
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from environments.models import AuditEvent, Event
from environments.records import create_record
from environments.tests.factories import log_in_director, make_environment
from webhooks import erasure, manual
from webhooks.models import Attempt, Delivery
from webhooks.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}


@pytest.fixture
def env():
    return make_environment("clinic")


def sent_and_waiting(env, receiver):
    """Two deliveries received (the receiver echoed a body) and one still waiting."""
    webhook = make_webhook(env, receiver.url, name="EHR bridge")
    for _ in range(3):
        create_record(env, "patients", ADA)
    first, second, third = webhook.deliveries.order_by("id")
    attempt_delivery(first.pk)
    attempt_delivery(second.pk)
    return webhook, [first, second], third


def test_erasing_keeps_ids_times_codes_and_types_and_removes_every_body(env):
    with Receiver(Answer(body=b'{"patient": "Ada Lovelace"}')) as receiver:
        webhook, done, waiting = sent_and_waiting(env, receiver)
    before = {d.pk: (d.message_id, d.status, d.last_status_code, d.event_types) for d in Delivery.objects.all()}

    erased = erasure.erase_payloads(erasure.Scope(env, webhook=webhook))
    assert erased == 2
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in done]):
        assert (delivery.message_id, delivery.status, delivery.last_status_code, delivery.event_types) == before[
            delivery.pk
        ]
        assert delivery.payload_erased_at is not None and delivery.body == ""
        attempt = Attempt.objects.get(delivery=delivery)
        assert attempt.response_body == "" and attempt.status_code == 200
        assert Event.objects.get(deliveries=delivery).data == {}
    waiting.refresh_from_db()
    assert (
        waiting.payload_erased_at is None
        and Event.objects.get(deliveries=waiting).data["fields"]["first_name"] == "Ada"
    )
    audit = AuditEvent.objects.get(action="deliveries.payloads_erased")
    assert audit.details["count"] == 2 and audit.details["webhook"] == "EHR bridge"


def test_an_event_keeps_its_data_while_another_webhooks_delivery_still_needs_it(env):
    with Receiver() as receiver:
        first = make_webhook(env, receiver.url, name="First")
        second = make_webhook(env, receiver.url, name="Second")
        create_record(env, "patients", ADA)
        attempt_delivery(first.deliveries.get().pk)
        attempt_delivery(second.deliveries.get().pk)
    erasure.erase_payloads(erasure.Scope(env, webhook=first))
    assert Event.objects.get().data["fields"]["first_name"] == "Ada"  # Second's delivery still keeps it
    erasure.erase_payloads(erasure.Scope(env, webhook=second))
    assert Event.objects.get().data == {}


def test_an_erased_delivery_cannot_be_re_sent(env, client):
    with Receiver() as receiver:
        webhook, done, _ = sent_and_waiting(env, receiver)
        erasure.erase_payloads(erasure.Scope(env, delivery=done[0]))
        with pytest.raises(manual.ResendRefused, match="was erased: there is nothing left to send"):
            manual.resend(Delivery.objects.get(pk=done[0].pk))
    log_in_director(client, env)
    page = client.get(f"/e/clinic/deliveries/{done[0].pk}/").content.decode()
    assert "<strong>Erased</strong> on" in page and "Lovelace" not in page


def test_retention_erases_old_payloads_daily_and_leaves_recent_ones(env):
    with Receiver() as receiver:
        _, done, _ = sent_and_waiting(env, receiver)
    Delivery.objects.filter(pk=done[0].pk).update(created_at=timezone.now() - datetime.timedelta(days=40))
    erasure.set_payload_retention(env, 30)
    assert erasure.apply_payload_retention() == 1
    assert list(Delivery.objects.filter(payload_erased_at__isnull=False).values_list("pk", flat=True)) == [done[0].pk]
    assert AuditEvent.objects.filter(action="deliveries.payloads_erased", actor_label="payload retention").exists()


def test_the_page_names_the_count_before_erasing_a_range(env, client):
    log_in_director(client, env)
    with Receiver() as receiver:
        webhook, done, _ = sent_and_waiting(env, receiver)
    page = client.get(f"/e/clinic/deliveries/erase/?webhook={webhook.pk}").content.decode()
    assert "2 payloads will be erased</strong>; 1 waiting delivery is left alone" in page
    assert not Delivery.objects.filter(payload_erased_at__isnull=False).exists()  # counting erased nothing
    response = client.post(f"/e/clinic/deliveries/erase/?webhook={webhook.pk}", {"webhook": webhook.pk}, follow=True)
    assert "Erased the payloads of 2 deliveries." in response.content.decode()
    inverted = client.get("/e/clinic/deliveries/erase/?since=2026-03-10T00:00&until=2026-03-01T00:00").content.decode()
    assert "swap them" in inverted
    client.post("/e/clinic/deliveries/erase/", {"action": "retention", "days": "14"})
    env.refresh_from_db()
    assert env.payload_retention_days == 14


def test_the_commands_count_erase_and_set_retention(env):
    with Receiver() as receiver:
        _, done, _ = sent_and_waiting(env, receiver)
    out = StringIO()
    call_command("erase_payloads", "--environment=clinic", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"would_erase": 2, "waiting_left_alone": 1, "erased": 0}
    out = StringIO()
    call_command(
        "erase_payloads", "--environment=clinic", f"--delivery={done[0].message_id}", "--yes", "--json", stdout=out
    )
    assert json.loads(out.getvalue())["erased"] == 1
    out = StringIO()
    call_command("set_payload_retention", "--environment=clinic", "--days=7", "--json", stdout=out)
    assert json.loads(out.getvalue())["payload_retention_days"] == 7
