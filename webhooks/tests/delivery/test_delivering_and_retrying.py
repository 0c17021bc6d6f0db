"""The delivery engine in-process: real HTTP receivers on 127.0.0.1, the clock moved by the test.

Workers call the same `attempt_delivery` and `drain`; these tests call it directly so that
retry schedules are checked by moving `now`, not by waiting.
"""

import datetime
import json

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook

from environments.models import AuditEvent
from environments.records import create_record, update_record
from environments.tests.factories import make_environment
from webhooks.delivery import ledger
from webhooks.delivery.sending import attempt_delivery, drain
from webhooks.delivery.sweeper import sweep
from webhooks.lifecycle import pause_webhook, resume_webhook
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def latest_delivery(webhook) -> Delivery:
    return Delivery.objects.filter(webhook=webhook).latest("id")


def test_a_change_writes_a_delivery_in_its_own_transaction_for_each_subscribed_webhook():
    environment = make_environment()
    with Receiver() as receiver:
        patients_hook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        workers_hook = make_webhook(environment, receiver.url, event_types=["workers.created"])

        with pytest.raises(RuntimeError), transaction.atomic():
            create_record(environment, "patients", PATIENT)
            raise RuntimeError("the change is rolled back")
        assert not Delivery.objects.exists()

        create_record(environment, "patients", PATIENT)

    assert Delivery.objects.filter(webhook=patients_hook).count() == 1
    assert not Delivery.objects.filter(webhook=workers_hook).exists()


def test_a_delivery_carries_the_event_signed_so_the_standardwebhooks_library_verifies_it():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        record = create_record(environment, "patients", PATIENT, external_id="p-1")
        attempt = attempt_delivery(latest_delivery(webhook).pk)

    assert attempt.succeeded and attempt.status_code == 200
    [request] = receiver.requests
    payload = StandardWebhook(webhook.plain_secret).verify(request.body, request.headers)
    assert payload["type"] == "patients.created"
    assert payload["environment"] == environment.slug
    assert payload["data"]["id"] == str(record.id)
    assert payload["id"].startswith("evt_")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == latest_delivery(webhook).message_id
    assert latest_delivery(webhook).status == Delivery.Status.SUCCEEDED


def test_a_receiver_answering_500_then_200_gets_a_retry_after_about_five_seconds_with_the_same_id():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(500, body=b"try later")
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        start = timezone.now()

        first = attempt_delivery(delivery.pk, now=start)
        delivery.refresh_from_db()
        assert not first.succeeded and first.status_code == 500 and first.response_body == "try later"
        assert delivery.status == Delivery.Status.RETRYING
        wait = (delivery.next_attempt_at - start).total_seconds()
        assert 4 <= wait <= 6, "the second attempt follows the Standard Webhooks schedule (5 s, with jitter)"

        assert attempt_delivery(delivery.pk, now=start + datetime.timedelta(seconds=1)) is None, "not due yet"
        second = attempt_delivery(delivery.pk, now=delivery.next_attempt_at)

    delivery.refresh_from_db()
    assert second.succeeded and second.number == 2 and second.trigger == Attempt.Trigger.SCHEDULED
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.attempt_count == 2
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert ids == {delivery.message_id}
    assert receiver.requests[0].body == receiver.requests[1].body


def test_retries_follow_the_whole_schedule_then_give_up(settings):
    settings.WEBHOOK_RETRY_JITTER = 0
    environment = make_environment()
    with Receiver() as receiver:
        receiver.default.status = 503
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        now = timezone.now()
        waits = []
        for _ in settings.WEBHOOK_RETRY_SCHEDULE:
            attempt_delivery(delivery.pk, now=now)
            delivery.refresh_from_db()
            if delivery.next_attempt_at is None:
                break
            waits.append((delivery.next_attempt_at - now).total_seconds())
            now = delivery.next_attempt_at

    assert waits == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == len(settings.WEBHOOK_RETRY_SCHEDULE)


def test_retry_after_on_429_is_honoured_within_the_limit(settings):
    settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS = 3600
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(429, headers={"Retry-After": "120"}).answer(429, headers={"Retry-After": "999999"})
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        start = timezone.now()
        attempt_delivery(delivery.pk, now=start)
        delivery.refresh_from_db()
        assert (delivery.next_attempt_at - start).total_seconds() == pytest.approx(120)

        second_at = delivery.next_attempt_at
        attempt_delivery(delivery.pk, now=second_at)
        delivery.refresh_from_db()
        assert (delivery.next_attempt_at - second_at).total_seconds() == pytest.approx(3600), "capped"


def test_410_gone_disables_the_webhook_and_says_why():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(410)
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        attempt_delivery(delivery.pk)
        create_record(environment, "patients", PATIENT)
        assert attempt_delivery(latest_delivery(webhook).pk) is None, "nothing is sent to a disabled webhook"

    webhook.refresh_from_db()
    delivery.refresh_from_db()
    assert webhook.state == Webhook.State.DISABLED and "410" in webhook.disabled_reason
    assert delivery.status == Delivery.Status.FAILED and delivery.next_attempt_at is None
    assert len(receiver.requests) == 1
    assert AuditEvent.objects.filter(action="webhook.disabled").filter(target_id=str(webhook.pk)).exists()


def test_a_webhook_failing_for_five_days_in_a_row_is_disabled_and_audited():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.default.status = 500
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        start = timezone.now()
        attempt_delivery(delivery.pk, now=start)
        webhook.refresh_from_db()
        assert webhook.failing_since == start and webhook.state == Webhook.State.ACTIVE

        later = start + datetime.timedelta(days=5, minutes=1)
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=later)
        attempt_delivery(delivery.pk, now=later)

    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.DISABLED
    assert "5 days" in webhook.disabled_reason
    assert AuditEvent.objects.filter(action="webhook.disabled").filter(target_id=str(webhook.pk)).exists()


def test_a_success_clears_the_failing_streak():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(500)
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        attempt_delivery(delivery.pk)
        delivery.refresh_from_db()
        attempt_delivery(delivery.pk, now=delivery.next_attempt_at)
    webhook.refresh_from_db()
    assert webhook.failing_since is None and webhook.last_triggered_at is not None


def test_a_timeout_and_a_refused_connection_are_recorded_as_errors_and_retried():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(200, delay=3)
        webhook = make_webhook(environment, receiver.url, timeout_seconds=1)
        create_record(environment, "patients", PATIENT)
        timed_out = attempt_delivery(latest_delivery(webhook).pk)
    assert timed_out.error == "timeout" and timed_out.status_code is None
    assert 900 <= timed_out.duration_ms < 2500

    # The receiver is gone now: its port refuses connections.
    delivery = latest_delivery(webhook)
    delivery.refresh_from_db()
    refused = attempt_delivery(delivery.pk, now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    assert refused.error == "connection_refused"
    assert delivery.status == Delivery.Status.RETRYING and delivery.attempt_count == 2


def test_a_redirect_is_a_failure_and_is_not_followed():
    environment = make_environment()
    with Receiver() as target, Receiver() as receiver:
        receiver.answer(302, headers={"Location": target.url})
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        attempt = attempt_delivery(latest_delivery(webhook).pk)
    assert attempt.status_code == 302 and not attempt.succeeded
    assert target.requests == []
    assert latest_delivery(webhook).status == Delivery.Status.RETRYING


def test_batching_puts_at_most_the_maximum_events_in_a_request():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, max_events_per_request=2)
        with transaction.atomic():
            for n in range(5):
                create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        deliveries = list(Delivery.objects.filter(webhook=webhook).order_by("id"))
        for delivery in deliveries:
            attempt_delivery(delivery.pk)

    assert [d.event_count for d in deliveries] == [2, 2, 1]
    bodies = [json.loads(request.body) for request in receiver.requests]
    assert [len(body["events"]) for body in bodies] == [2, 2, 1]
    names = [event["data"]["fields"]["first_name"] for body in bodies for event in body["events"]]
    assert names == ["P0", "P1", "P2", "P3", "P4"]


def test_only_opted_in_event_types_are_delivered():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, event_types=["patients.updated"])
        record = create_record(environment, "patients", PATIENT)
        create_record(environment, "workers", {"name": "W", "email": "w@example.org"})
        update_record(record, {"first_name": "Grace"})
    [delivery] = Delivery.objects.filter(webhook=webhook)
    assert delivery.event_types == "patients.updated"


def test_paused_webhooks_keep_events_waiting_and_send_them_in_order_on_resume():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        pause_webhook(webhook)
        for n in range(3):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        assert sweep() == 0, "the sweeper leaves a paused webhook alone"
        for delivery in Delivery.objects.filter(webhook=webhook):
            assert attempt_delivery(delivery.pk) is None
        assert receiver.requests == []

        resume_webhook(webhook)
        drain(webhook.pk)

    names = [json.loads(request.body)["data"]["fields"]["first_name"] for request in receiver.requests]
    assert names == ["P0", "P1", "P2"]


def test_resume_can_discard_what_waits_and_the_audit_log_says_so():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        pause_webhook(webhook)
        create_record(environment, "patients", PATIENT)
        assert resume_webhook(webhook, discard_waiting=True) == 1
        assert sweep() == 0
    assert Delivery.objects.get(webhook=webhook).status == Delivery.Status.DISCARDED
    event = AuditEvent.objects.filter(action="webhook.resumed").get(target_id=str(webhook.pk))
    assert event.details["waiting_deliveries"] == "discarded" and event.details["waiting"] == 1


def test_the_sweeper_enqueues_due_deliveries_whose_task_was_lost_and_skips_fresh_ones(settings):
    settings.WEBHOOK_REQUEUE_AFTER_SECONDS = 60
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
    delivery = latest_delivery(webhook)
    assert sweep() == 0, "just enqueued: in flight"
    assert sweep(now=timezone.now() + datetime.timedelta(seconds=61)) == 1
    delivery.refresh_from_db()
    assert delivery.enqueued_at > delivery.created_at


def test_two_claims_on_the_same_attempt_cannot_both_send():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(200, delay=0.5)
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", PATIENT)
        delivery = latest_delivery(webhook)
        assert delivery.lease_owner.startswith(Delivery.FAN_OUT_LEASE_MARK), "leased for the task the fan-out queued"
        now = timezone.now()
        _, claimed, _ = ledger.claim(owner="another-worker", now=now, env_cap=64, margin=30, delivery_id=delivery.pk)
        assert claimed == [], "the fan-out's task holds it"
        # Had that task been lost, its lease runs out; then one worker's claim takes it, and no one else.
        later = delivery.leased_until + datetime.timedelta(seconds=1)
        _, claimed, _ = ledger.claim(owner="another-worker", now=later, env_cap=64, margin=30, delivery_id=delivery.pk)
        assert [each.id for each in claimed] == [delivery.pk]
        assert attempt_delivery(delivery.pk, now=later) is None, "leased by another worker"
    assert receiver.requests == []


def test_extra_header_values_are_sent_but_not_kept_in_the_history():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, extra_headers={"Authorization": "Bearer receiver-token"})
        create_record(environment, "patients", PATIENT)
        attempt = attempt_delivery(latest_delivery(webhook).pk)
    assert receiver.requests[0].headers["Authorization"] == "Bearer receiver-token"
    stored = Attempt.objects.get(pk=attempt.pk).request_headers
    assert stored["Authorization"] == "[not recorded]"
    assert "receiver-token" not in json.dumps(stored)
    assert stored["webhook-id"] == latest_delivery(webhook).message_id
