"""Payload erasure and retention: metadata stays, bodies go, waiting deliveries are never touched."""

import datetime
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from conftest import manage_py
from environments.models import AuditEvent, Event
from environments.records import create_record
from environments.tests.factories import log_in_director, make_environment
from webhooks import erasure, manual
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Attempt, Delivery
from webhooks.retention import prune_deliveries
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
    response = client.post(
        f"/e/clinic/deliveries/erase/?webhook={webhook.pk}", {"webhook": webhook.pk, "expected": 2}, follow=True
    )
    assert "Erased the payloads of 2 deliveries: every delivery to webhook “EHR bridge”." in response.content.decode()
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
    counted = json.loads(out.getvalue())
    assert (counted["would_erase"], counted["waiting_left_alone"], counted["erased"]) == (2, 1, 0)
    assert counted["scope"] == {"scope": "environment", "what": "every delivery of every webhook in Clinic"}
    out = StringIO()
    call_command(
        "erase_payloads", "--environment=clinic", f"--delivery={done[0].message_id}", "--yes", "--json", stdout=out
    )
    assert json.loads(out.getvalue())["erased"] == 1
    out = StringIO()
    call_command("set_payload_retention", "--environment=clinic", "--days=7", "--json", stdout=out)
    assert json.loads(out.getvalue())["payload_retention_days"] == 7


# --- Erasure that cannot overreach: what does not resolve is an error, never "everything" --------------------


def kept_payloads(env) -> int:
    """Finished deliveries of `env` that still hold their payload."""
    finished = Delivery.objects.filter(environment=env).exclude(status__in=Delivery.WAITING)
    return finished.filter(payload_erased_at__isnull=True).exclude(body="").count()


@pytest.fixture
def two_received(env):
    """Two received deliveries of “EHR bridge” in clinic (one more waiting), the Director logged in."""
    with Receiver(Answer(body=b'{"patient": "Ada Lovelace"}')) as receiver:
        webhook, done, waiting = sent_and_waiting(env, receiver)
    return webhook, done, waiting


def post_erase(client, data: dict):
    return client.post("/e/clinic/deliveries/erase/", data)


@pytest.mark.parametrize("reference", ["987654321", "msg_2tYpo", "12x", "99999999999999999999999"])
def test_an_unknown_delivery_erases_nothing_and_the_page_says_so(env, client, two_received, reference):
    log_in_director(client, env)
    response = post_erase(client, {"delivery": reference, "webhook": "", "since": "", "until": "", "expected": 2})

    assert kept_payloads(env) == 2
    assert Attempt.objects.exclude(response_body="").count() == 2
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was erased." in page
    assert f"There is no delivery {reference} in Clinic" in page or f"“{reference}” is not a delivery" in page
    assert not AuditEvent.objects.filter(action="deliveries.payloads_erased").exists()


def test_another_environments_delivery_erases_nothing_in_either(env, client):
    lab = make_environment("lab")
    with Receiver() as receiver:
        sent_and_waiting(env, receiver)
        lab_webhook = make_webhook(lab, receiver.url, name="Lab feed")
        create_record(lab, "patients", ADA)
        lab_delivery = lab_webhook.deliveries.get()
        attempt_delivery(lab_delivery.pk)
    log_in_director(client, env)

    confirm = client.get(f"/e/clinic/deliveries/erase/?delivery={lab_delivery.pk}")
    response = post_erase(client, {"delivery": lab_delivery.pk, "expected": 1})

    assert "will be erased" not in confirm.content.decode()
    assert f"There is no delivery {lab_delivery.pk} in Clinic" in confirm.content.decode()
    assert f"There is no delivery {lab_delivery.pk} in Clinic" in response.content.decode()
    assert kept_payloads(env) == 2 and kept_payloads(lab) == 1


def test_a_delivery_pruned_after_the_page_opened_erases_nothing(env, client, two_received):
    _, done, _ = two_received
    log_in_director(client, env)
    confirm = client.get(f"/e/clinic/deliveries/erase/?delivery={done[0].pk}").content.decode()
    assert f"Delivery {done[0].message_id} to webhook “EHR bridge”:" in confirm
    assert "<strong>1 payload will be erased</strong>" in confirm
    Delivery.objects.filter(pk=done[0].pk).update(created_at=timezone.now() - datetime.timedelta(days=100))
    assert prune_deliveries(datetime.timedelta(days=90)) == 1

    response = post_erase(client, {"delivery": done[0].pk, "expected": 1})

    assert response.status_code == 400
    assert f"There is no delivery {done[0].pk} in Clinic: it was pruned" in response.content.decode()
    assert kept_payloads(env) == 1


def test_a_delivery_of_another_webhook_than_the_one_named_erases_nothing(env, client, two_received):
    _, done, _ = two_received
    with Receiver() as receiver:
        other = make_webhook(env, receiver.url, name="Billing")
    log_in_director(client, env)

    response = post_erase(client, {"delivery": done[0].pk, "webhook": other.pk, "expected": 1})

    assert response.status_code == 400
    assert f"Delivery {done[0].message_id} went to webhook “EHR bridge”, not “Billing”." in response.content.decode()
    assert kept_payloads(env) == 2


def test_an_unknown_webhook_erases_nothing(env, client, two_received):
    log_in_director(client, env)
    response = post_erase(client, {"webhook": 987654, "expected": 2})
    assert response.status_code == 400
    assert "There is no webhook 987654 in this environment" in response.content.decode()
    assert kept_payloads(env) == 2


def test_one_delivery_erases_that_delivery_only_and_the_audit_names_it(env, client, two_received):
    webhook, done, _ = two_received
    log_in_director(client, env)

    response = post_erase(client, {"delivery": done[0].pk, "expected": 1})

    assert response.status_code == 302
    assert list(Delivery.objects.filter(payload_erased_at__isnull=False).values_list("pk", flat=True)) == [done[0].pk]
    assert kept_payloads(env) == 1
    audit = AuditEvent.objects.get(action="deliveries.payloads_erased")
    assert audit.details == {
        "scope": "delivery",
        "delivery": done[0].message_id,
        "webhook": "EHR bridge",
        "webhook_id": webhook.pk,
        "what": f"delivery {done[0].message_id} to webhook “EHR bridge”",
        "count": 1,
    }
    assert (audit.target_type, audit.target_id) == ("webhooks.webhook", str(webhook.pk))


def test_an_environment_wide_erasure_is_named_as_such_in_the_confirmation_and_the_audit(env, client, two_received):
    log_in_director(client, env)
    confirm = client.get("/e/clinic/deliveries/erase/?until=2100-01-01T00:00").content.decode()
    assert "Every delivery of every webhook in Clinic created before 2100-01-01 00:00 UTC:" in confirm
    assert "<strong>2 payloads will be erased</strong>" in confirm

    post_erase(client, {"until": "2100-01-01T00:00", "expected": 2})

    details = AuditEvent.objects.get(action="deliveries.payloads_erased").details
    assert None not in details.values()
    assert details["scope"] == "environment" and details["count"] == 2 and "delivery" not in details
    assert details["what"] == "every delivery of every webhook in Clinic created before 2100-01-01 00:00 UTC"


def test_more_payloads_in_scope_than_were_confirmed_erases_nothing_and_shows_the_new_count(env, client, two_received):
    webhook, _, waiting = two_received
    log_in_director(client, env)
    with Receiver() as receiver:
        webhook.url = receiver.url
        webhook.save(update_fields=["url"])
        attempt_delivery(waiting.pk)  # finished after the page counted 2

    response = post_erase(client, {"webhook": webhook.pk, "expected": 2})

    page = response.content.decode()
    assert response.status_code == 400
    assert "3 payloads are in scope now, more than the 2 you confirmed: nothing was erased" in page
    assert 'name="expected" value="3"' in page
    assert kept_payloads(env) == 3
    without_count = post_erase(client, {"webhook": webhook.pk})
    assert "count the payloads first, then confirm" in without_count.content.decode()
    assert kept_payloads(env) == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--delivery="], "--delivery is empty: give its webhook-id (msg_…) or id, or leave --delivery out"),
        (["--webhook="], "--webhook is empty: give its id or <environment>/<name>, or leave --webhook out"),
        (["--since="], "--since is empty: give an ISO 8601 date or date-time, or leave --since out"),
        (["--delivery=msg_2tYpo"], "There is no delivery msg_2tYpo in Clinic: it was pruned"),
        (["--delivery=lab"], "“lab” is not a delivery: give its id or its webhook-id (msg_…)."),
        (["--webhook=lab/Lab feed"], "Webhook “Lab feed” is not in Clinic. Nothing was erased."),
    ],
)
def test_the_command_refuses_what_does_not_resolve_in_one_line_and_erases_nothing(
    env, two_received, arguments, message
):
    with Receiver() as receiver:
        make_webhook(make_environment("lab"), receiver.url, name="Lab feed")

    result = manage_py("erase_payloads", "--environment=clinic", *arguments, "--yes")

    assert kept_payloads(env) == 2
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "nothing was erased" in result.stderr.lower()


def test_the_command_names_what_it_erased(env, two_received):
    _, done, _ = two_received
    result = manage_py("erase_payloads", "--environment=clinic", f"--delivery={done[1].message_id}", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"Erased the payloads of 1 delivery (0 waiting left alone): delivery {done[1].message_id} "
        "to webhook “EHR bridge”."
    )
    assert kept_payloads(env) == 1
