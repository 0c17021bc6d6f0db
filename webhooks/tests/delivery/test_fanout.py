"""The fan-out leases a new delivery for the task it queues, within the webhook's cap, so that task sends at once.

The worker that gets such a task reads one row and POSTs: no claim before the
request. These tests check what that must not cost: the cap, the oldest-first
order, pausing, and a delivery whose task is lost.
"""

import ast
import datetime
import json

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from environments.records import create_record
from environments.tests.factories import make_environment
from integration_tools.celery import app
from webhooks.delivery import bodies, ledger, queueing, sending
from webhooks.delivery.sweeper import sweep
from webhooks.lifecycle import pause_webhook
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_delivery, make_webhook
from webhooks.tests.locks import claim_lock_held_elsewhere
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"status": "active", "first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10"}


def new_delivery(environment, webhook) -> Delivery:
    create_record(environment, "patients", PATIENT)
    return Delivery.objects.filter(webhook=webhook).latest("id")


def is_fan_out_leased(delivery: Delivery) -> bool:
    return delivery.lease_owner.startswith(Delivery.FAN_OUT_LEASE_MARK) and delivery.leased_until is not None


def queued_deliveries() -> list[int]:
    """The deliveries whose `deliver` task waits on the broker (no worker runs in these tests)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queued = []
    for raw in broker.lrange("celery", 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == queueing.DELIVER:
            queued.append(ast.literal_eval(headers["argsrepr"])[0])
    return queued


def test_a_new_delivery_is_leased_for_its_task_with_its_body_frozen_and_that_task_sends_it():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        before = timezone.now()
        delivery = new_delivery(environment, webhook)

        assert is_fan_out_leased(delivery)
        lease = datetime.timedelta(seconds=ledger.lease_seconds(webhook.timeout_seconds, 30))
        assert before + lease <= delivery.leased_until <= timezone.now() + lease
        # The body built from the event in hand is the one built from the event read back.
        assert delivery.body == bodies.body_of(delivery.pk, webhook)

        assert sending.deliver(delivery.pk) == 1

    [request] = receiver.requests
    assert request.text == delivery.body
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.leased_until is None and delivery.lease_owner == ""
    assert delivery.attempts.get().trigger == Attempt.Trigger.SCHEDULED


def test_the_fan_out_leases_no_more_than_the_cap_and_never_ahead_of_an_older_waiting_delivery(settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK = 2
    environment = make_environment()
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks")
    first, second, third = (new_delivery(environment, webhook) for _ in range(3))
    assert is_fan_out_leased(first) and is_fan_out_leased(second)
    assert not is_fan_out_leased(third), "both sending slots are taken"

    # The first two are sent; the third still waits for a claim, so a fourth does not jump ahead of it.
    Delivery.objects.filter(pk__in=[first.pk, second.pk]).update(
        status=Delivery.Status.SUCCEEDED, leased_until=None, lease_owner="", next_attempt_at=None
    )
    assert not is_fan_out_leased(new_delivery(environment, webhook))

    Delivery.objects.filter(webhook=webhook).update(status=Delivery.Status.SUCCEEDED, next_attempt_at=None)
    assert is_fan_out_leased(new_delivery(environment, webhook)), "nothing waits: a slot is free again"


@pytest.fixture
def two_slots(settings):
    """Two sending slots per webhook, and an empty broker queue to look into."""
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK = 2
    app.control.purge()


def test_with_every_slot_taken_a_new_delivery_gets_no_task_and_the_slots_holders_send_it(two_slots):
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        first, second, third = (new_delivery(environment, webhook) for _ in range(3))
        assert not is_fan_out_leased(third)
        # Its task would find no free slot and do nothing: under a backlog that was a task per delivery.
        assert sorted(queued_deliveries()) == [first.pk, second.pk]

        # A holder looks for due deliveries once it has recorded, and sends them.
        assert sending.deliver(first.pk) == 2
        assert sending.deliver(second.pk) == 1
    assert [request.headers["webhook-id"] for request in receiver.requests] == [
        first.message_id,
        third.message_id,
        second.message_id,
    ]


def test_a_delivery_left_unleased_while_a_slot_is_free_still_gets_its_task():
    environment = make_environment()
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks")
    app.control.purge()
    with claim_lock_held_elsewhere(webhook):
        delivery = new_delivery(environment, webhook)
    assert not is_fan_out_leased(delivery)
    assert queued_deliveries() == [delivery.pk]


def test_a_transaction_of_many_changes_queues_one_task_per_free_slot_and_they_send_them_all(two_slots):
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        # A worker holds the claim lock while the transaction fans out: nothing is leased at the fan-out.
        with claim_lock_held_elsewhere(webhook), transaction.atomic():
            for n in range(10):
                create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        deliveries = list(Delivery.objects.filter(webhook=webhook).order_by("id"))
        assert not any(is_fan_out_leased(delivery) for delivery in deliveries)
        queued = sorted(queued_deliveries())
        assert queued == [deliveries[0].pk, deliveries[1].pk], "one task per free slot, not one per change"

        assert sum(sending.deliver(delivery_id) for delivery_id in queued) == 10
    names = [json.loads(request.body)["data"]["fields"]["first_name"] for request in receiver.requests]
    assert names == [f"P{n}" for n in range(10)], "all ten, oldest first"


def test_a_transaction_of_many_changes_leases_up_to_the_cap_and_queues_only_those_tasks(two_slots):
    environment = make_environment()
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks")
    with transaction.atomic():
        for n in range(10):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
    deliveries = list(Delivery.objects.filter(webhook=webhook).order_by("id"))
    assert [is_fan_out_leased(delivery) for delivery in deliveries] == [True, True] + [False] * 8
    assert sorted(queued_deliveries()) == [deliveries[0].pk, deliveries[1].pk]


@pytest.mark.parametrize("kind", ["failing", "paused", "batching"])
def test_failing_paused_and_batching_webhooks_get_no_lease_from_the_fan_out(kind):
    environment = make_environment()
    webhook = make_webhook(
        environment, "http://127.0.0.1:9999/hooks", max_events_per_request=10 if kind == "batching" else 1
    )
    if kind == "failing":
        # A failing webhook's waiting deliveries go first, oldest first, when it answers again.
        Webhook.objects.filter(pk=webhook.pk).update(failing_since=timezone.now())
    if kind == "paused":
        pause_webhook(webhook)
    delivery = new_delivery(environment, webhook)
    assert delivery.leased_until is None and delivery.lease_owner == "" and delivery.body == ""


def test_a_task_that_meets_a_webhook_paused_since_its_change_sends_nothing():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        delivery = new_delivery(environment, webhook)
        pause_webhook(webhook)
        assert sending.deliver(delivery.pk) == 0
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING and delivery.attempt_count == 0


def test_a_lost_task_only_delays_its_delivery_until_the_lease_runs_out_and_the_sweeper_queues_it():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        delivery = new_delivery(environment, webhook)  # its task is never run: lost with a flushed Redis
        assert sweep() == 0, "leased for its task"
        after_lease = delivery.leased_until + datetime.timedelta(seconds=61)
        assert sweep(now=after_lease) == 1, "the lease has run out: queued again"
        attempt = sending.attempt_delivery(delivery.pk, now=after_lease)
    assert attempt.succeeded and len(receiver.requests) == 1


def test_a_manual_send_does_not_race_the_task_the_fan_out_queued():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        delivery = new_delivery(environment, webhook)
        assert sending.send_now(delivery.pk, trigger=Attempt.Trigger.RESEND) is None
        assert sending.deliver(delivery.pk) == 1
    assert len(receiver.requests) == 1


def test_a_change_never_waits_for_a_worker_holding_the_webhooks_claim_lock():
    environment = make_environment()
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks")
    with claim_lock_held_elsewhere(webhook), transaction.atomic():
        delivery = new_delivery(environment, webhook)
    assert not is_fan_out_leased(delivery), "left to a worker's claim rather than waiting"
    assert delivery.status == Delivery.Status.PENDING and delivery.next_attempt_at is not None


def test_a_worker_leaves_a_webhook_whose_claim_lock_a_long_transaction_holds_and_comes_back():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        delivery = make_delivery(webhook, status=Delivery.Status.PENDING, next_attempt_at=timezone.now())
        with claim_lock_held_elsewhere(webhook):
            # Had the claims waited for the lock, they would send once it is released, below.
            assert sending.deliver(delivery.pk) == 0
            assert sending.drain(webhook.pk) == 0
            assert receiver.requests == [], "nothing sent while the lock is held"
        assert sending.deliver(delivery.pk) == 1, "once it is free, the delivery goes"
    assert len(receiver.requests) == 1
