"""Each webhook numbers the events it sends, contiguously from 1, in commit order: `"sequence"` in every event.

Numbers are given at fan-out from the webhook's counter row, locked until the
writer commits: a writer that rolls back gives its number back, and a second
writer of the same webhook waits for the first one's commit.
"""

import json
import threading

import pytest
from django.db import connection, transaction

from environments.records import create_record, update_record
from environments.tests.factories import make_environment
from webhooks import manual
from webhooks.delivery import bodies, sending
from webhooks.models import Delivery, DeliveryEvent, WebhookSequence
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"status": "active", "first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10"}
RECEIVER = "http://127.0.0.1:9999/hooks"  # nothing is sent in these tests


def sent_sequences(webhook) -> list[int]:
    """The numbers each of the webhook's real deliveries carries in its body, in delivery order."""
    numbers = []
    for delivery in Delivery.objects.filter(webhook=webhook, is_test=False).order_by("id"):
        body = json.loads(delivery.body or bodies.body_of(delivery.pk, webhook))
        numbers += [event["sequence"] for event in body.get("events", [body])]
    return numbers


def test_every_webhook_numbers_its_own_events_from_one_without_a_gap():
    environment = make_environment("clinic")
    created_only = make_webhook(environment, RECEIVER, event_types=["patients.created"])
    everything = make_webhook(environment, RECEIVER)
    for index in range(5):
        record = create_record(environment, "patients", {**PATIENT, "first_name": f"P{index}"})
        update_record(record, {"first_name": f"Q{index}"})

    assert sent_sequences(created_only) == [1, 2, 3, 4, 5]
    assert sent_sequences(everything) == list(range(1, 11))
    assert WebhookSequence.objects.get(webhook=everything).last == 10


def test_a_body_rendered_at_fan_out_and_one_rendered_by_a_worker_both_carry_the_number():
    environment = make_environment("clinic")
    webhook = make_webhook(environment, RECEIVER, max_in_flight=1)
    create_record(environment, "patients", PATIENT)  # leased at fan-out: body rendered there
    create_record(environment, "patients", PATIENT)  # no free slot: rendered when sent
    first, second = Delivery.objects.filter(webhook=webhook).order_by("id")
    assert first.body and not second.body
    assert json.loads(first.body)["sequence"] == 1
    assert json.loads(bodies.body_of(second.pk, webhook))["sequence"] == 2


def test_a_batch_carries_each_event_s_own_number():
    environment = make_environment("clinic")
    webhook = make_webhook(environment, RECEIVER, max_events_per_request=3)
    with transaction.atomic():
        for index in range(4):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{index}"})
    batches = [
        [event["sequence"] for event in json.loads(bodies.body_of(delivery.pk, webhook))["events"]]
        for delivery in Delivery.objects.filter(webhook=webhook).order_by("id")
    ]
    assert batches == [[1, 2, 3], [4]]


def test_tests_get_no_number_and_take_none_from_the_sequence():
    environment = make_environment("clinic")
    webhook = make_webhook(environment, RECEIVER)
    create_record(environment, "patients", PATIENT)
    manual.send_test(webhook)
    create_record(environment, "patients", PATIENT)

    test = Delivery.objects.get(webhook=webhook, is_test=True)
    assert DeliveryEvent.objects.get(delivery=test).sequence is None
    assert "sequence" not in bodies.body_of(test.pk, webhook)
    assert sent_sequences(webhook) == [1, 2]


def test_a_re_send_carries_the_same_number():
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        create_record(environment, "patients", PATIENT)
        create_record(environment, "patients", PATIENT)
        first = Delivery.objects.filter(webhook=webhook).earliest("id")
        sending.deliver(first.pk)
        first.refresh_from_db()
        carried_out(manual.resend(first))
    assert [json.loads(request.body)["sequence"] for request in receiver.requests] == [1, 1]
    assert receiver.requests[0].body == receiver.requests[1].body


def test_a_writer_that_rolls_back_gives_its_number_back():
    environment = make_environment("clinic")
    webhook = make_webhook(environment, RECEIVER)
    create_record(environment, "patients", PATIENT)
    with pytest.raises(RuntimeError), transaction.atomic():
        create_record(environment, "patients", PATIENT)
        raise RuntimeError("the write fails after its fan-out")
    create_record(environment, "patients", PATIENT)
    assert sent_sequences(webhook) == [1, 2]


def _write_in_a_thread(environment, started: threading.Event, finish: threading.Event, *, roll_back: bool):
    def write():
        try:
            with transaction.atomic():
                create_record(environment, "patients", PATIENT)
                started.set()
                finish.wait(timeout=30)
                if roll_back:
                    transaction.set_rollback(True)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


@pytest.mark.parametrize("roll_back", [False, True])
def test_a_second_writer_waits_for_the_first_to_commit_or_roll_back_so_numbers_follow_commit_order(roll_back):
    environment = make_environment("clinic")
    webhook = make_webhook(environment, RECEIVER)
    started, finish = threading.Event(), threading.Event()
    first = _write_in_a_thread(environment, started, finish, roll_back=roll_back)
    assert started.wait(timeout=30)
    second_done, second_started = threading.Event(), threading.Event()
    second = _write_in_a_thread(environment, second_started, second_done, roll_back=False)
    second_done.set()  # it commits as soon as it has written
    # It cannot number its event while the first writer holds the webhook's counter.
    assert not second_started.wait(timeout=1.5)
    finish.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert sent_sequences(webhook) == ([1] if roll_back else [1, 2])
