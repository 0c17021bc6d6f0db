"""Order, pacing, isolation and the complete history with real Celery workers, real receivers and PostgreSQL.

What a receiver's owner would check: every record's changes arrive in commit order; strict order never has
two requests open at once; a rate is never exceeded in any second; a 429 slows the webhook without marking it
failing; many bad webhooks in one environment do not delay a healthy one in another; and after workers are
killed mid-send, every request the receiver got is in the history.
"""

import datetime
import json
import random
import time

import pytest
from django.utils import timezone

from conftest import kill_process_group, wait_for
from environments.records import create_record, update_record
from environments.tests.factories import make_environment
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.misbehaving import Misbehaving
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}
# Retries within a second, so that a test sees several without waiting minutes.
QUICK_RETRIES = {"WEBHOOK_RETRY_SCHEDULE": "0,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3", "WEBHOOK_RETRY_JITTER": "0"}


def name_of(body: bytes) -> str:
    return json.loads(body)["data"]["fields"]["first_name"]


def changes(environment, names_by_record: dict[str, list[str]]) -> None:
    """Each record created with its first name, then updated to each next one; records interleaved."""
    records = {}
    for step in range(max(len(names) for names in names_by_record.values())):
        for key, names in names_by_record.items():
            if step < len(names):
                if step == 0:
                    records[key] = create_record(environment, "patients", {**PATIENT, "first_name": names[0]})
                else:
                    records[key] = update_record(records[key], {"first_name": names[step]})


def all_succeeded(webhook, count: int):
    return lambda: Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED).count() == count


def test_per_record_order_holds_with_two_workers_and_a_receiver_refusing_first_attempts_at_random(start_worker):
    for _ in range(2):
        start_worker(**QUICK_RETRIES)
    environment = make_environment()
    chance = random.Random(21)
    arrivals: list[tuple[str, bool]] = []  # (change, accepted), in the order the receiver got them
    seen: set[str] = set()

    def judge(body, headers):  # called under the receiver's lock, in arrival order
        message = headers["webhook-id"]
        refuse = message not in seen and chance.random() < 0.3
        seen.add(message)
        arrivals.append((name_of(body), not refuse))
        # Each answer takes a moment, so that records sent in parallel are seen to be.
        return Answer(500, delay=0.02) if refuse else Answer(delay=0.05)

    names = {f"R{r}": [f"R{r}-{n}" for n in range(5)] for r in range(10)}
    with Receiver(judge=judge) as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="record", max_in_flight=8)
        changes(environment, names)
        wait_for(all_succeeded(webhook, 50), timeout=120, message="all 50 changes to be delivered")
        assert receiver.most_in_flight > 1, "different records went in parallel"

    refused = [change for change, accepted in arrivals if not accepted]
    assert refused, "the receiver refused some first attempts"
    for record, record_names in names.items():
        done = -1
        for change, accepted in arrivals:
            if change.startswith(f"{record}-"):
                number = int(change.split("-")[1])
                assert number == done + 1, f"{change} arrived before {record}-{done + 1} was accepted"
                done = number if accepted else done
        assert done == len(record_names) - 1


def test_strict_order_never_has_two_requests_open_and_keeps_commit_order_across_two_workers(start_worker):
    for _ in range(2):
        start_worker()
    environment = make_environment()
    names = {f"R{r}": [f"R{r}-{n}" for n in range(6)] for r in range(5)}
    with Receiver(default=Answer(delay=0.02)) as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="strict", max_in_flight=16)
        changes(environment, names)
        wait_for(all_succeeded(webhook, 30), timeout=60, message="all 30 changes to be delivered")

    assert receiver.most_in_flight == 1
    committed = list(Delivery.objects.filter(webhook=webhook).order_by("id").values_list("message_id", flat=True))
    assert [request.headers["webhook-id"] for request in receiver.requests] == committed


def test_a_rate_of_five_per_second_is_never_exceeded_in_any_second_over_thirty_seconds_with_two_workers(
    start_worker,
):
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, max_per_second=5, max_in_flight=8)
        for n in range(170):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        for _ in range(2):
            start_worker()
        wait_for(lambda: len(receiver.requests) >= 150, timeout=45, message="150 requests at 5/s")
        times = sorted(request.at for request in receiver.requests)

    busiest = max(sum(1 for other in times if moment <= other < moment + 1) for moment in times)
    assert busiest <= 5, f"{busiest} requests arrived within one second"
    assert len(times) / (times[-1] - times[0]) > 4, "paced, not stalled"
    assert Webhook.objects.get(pk=webhook.pk).failing_since is None


def test_a_429_with_retry_after_three_delays_the_webhook_three_seconds_and_leaves_it_healthy(start_worker):
    start_worker()
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(429, headers={"Retry-After": "3"})
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", {**PATIENT, "first_name": "First"})
        wait_for(lambda: receiver.requests, timeout=20, message="the first request")
        for n in range(3):
            create_record(environment, "patients", {**PATIENT, "first_name": f"Later {n}"})
        wait_for(all_succeeded(webhook, 4), timeout=30, message="all four to be delivered")
        arrivals = [request.at for request in receiver.requests]

    assert 3 <= arrivals[1] - arrivals[0] < 6, "nothing went to the webhook for the 3 seconds it asked for"
    webhook.refresh_from_db()
    assert webhook.failing_since is None and webhook.state == Webhook.State.ACTIVE
    first = Delivery.objects.filter(webhook=webhook).earliest("id")
    assert list(first.attempts.order_by("number").values_list("status_code", flat=True)) == [429, 200]


def test_a_worker_killed_mid_line_leaves_an_attempt_of_unknown_outcome_and_the_line_keeps_its_order(start_worker):
    first = start_worker()
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(200, delay=30)  # the head hangs: its worker is killed while sending it
        webhook = make_webhook(environment, receiver.url, ordering="record", timeout_seconds=2)
        record = create_record(environment, "patients", {**PATIENT, "first_name": "A1"})
        wait_for(lambda: receiver.requests, timeout=30, message="the head's request to arrive")
        update_record(record, {"first_name": "A2"})
        update_record(record, {"first_name": "A3"})
        kill_process_group(first)

        start_worker()
        wait_for(all_succeeded(webhook, 3), timeout=60, message="the line to be delivered by the next worker")

    assert [name_of(request.body) for request in receiver.requests] == ["A1", "A1", "A2", "A3"]
    head = Delivery.objects.filter(webhook=webhook).earliest("id")
    unknown, resent = head.attempts.order_by("number")
    assert unknown.outcome == "outcome unknown: the worker stopped" and unknown.number == 1
    assert resent.succeeded and resent.number == 2


def test_twenty_hanging_and_dripping_webhooks_in_one_environment_do_not_delay_a_healthy_one_in_another(
    start_worker,
):
    start_worker()
    careless, other = make_environment("careless"), make_environment("other")
    with (
        Misbehaving("hang") as hanging,
        Misbehaving("drip", interval=0.3) as dripping,
        Receiver() as healthy,
    ):
        for n in range(20):
            make_webhook(careless, (hanging if n % 2 else dripping).url, timeout_seconds=8, name=f"Bad {n}")
        good = make_webhook(other, healthy.url, name="Healthy")
        committed = {}
        for n in range(40):
            if n % 10 == 0:  # the careless environment keeps writing: its webhooks keep getting work
                create_record(careless, "patients", {**PATIENT, "first_name": f"C{n}"})
            create_record(other, "patients", {**PATIENT, "first_name": f"H{n}"})
            committed[f"H{n}"] = time.time()
            time.sleep(0.1)
        wait_for(lambda: len(healthy.requests) == 40, timeout=30, message="the healthy webhook's 40 deliveries")
        open_at_most = hanging.connections + dripping.connections

    latencies = sorted(request.at - committed[name_of(request.body)] for request in healthy.requests)
    assert open_at_most >= 20, "the bad receivers were sent to"
    assert latencies[int(len(latencies) * 0.95)] < 1.0, f"healthy latencies: {latencies[-5:]}"
    assert latencies[-1] < 2.0, f"healthy latencies: {latencies[-5:]}"
    assert Attempt.objects.filter(delivery__webhook=good, succeeded=True).count() == 40


def test_after_two_kill_9s_mid_burst_nothing_is_lost_and_every_request_received_is_in_the_history(start_worker):
    workers = [start_worker(), start_worker(beat=False)]
    environment = make_environment()
    with Receiver(default=Answer(delay=0.02)) as receiver:
        webhook = make_webhook(environment, receiver.url, timeout_seconds=2)
        for n in range(300):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        for victim, after in ((0, 60), (1, 160)):
            wait_for(lambda after=after: len(receiver.requests) >= after, timeout=60, message=f"{after} requests")
            kill_process_group(workers[victim])
            workers[victim] = start_worker(beat=victim == 0)
        wait_for(all_succeeded(webhook, 300), timeout=120, message="all 300 to be delivered")
        received: dict[str, int] = {}
        for request in receiver.requests:
            received[request.headers["webhook-id"]] = received.get(request.headers["webhook-id"], 0) + 1

    attempts = dict(Delivery.objects.filter(webhook=webhook).values_list("message_id", "attempt_count"))
    assert set(received) == set(attempts), "every delivery reached the receiver"
    unrecorded = {
        message: count - attempts[message] for message, count in received.items() if count > attempts[message]
    }
    assert unrecorded == {}, "requests the receiver got that the history does not show"
    recorded = Attempt.objects.filter(delivery__webhook=webhook).count()
    assert recorded == sum(attempts.values())
    started = timezone.now() - datetime.timedelta(minutes=10)
    assert not Delivery.objects.filter(webhook=webhook, sending_since__gt=started).exists()
