"""Order and pacing in-process: a record's line, strict order, the rate gate, 429s, slots taken by hand, and
attempts whose worker stopped mid-send. Real PostgreSQL and real receivers; the clock moved where it matters.

The same functions run in the workers (test_order_with_workers.py drives them there).
"""

import datetime
import json

import pytest
from django.db import connection
from django.utils import timezone

from environments.records import create_record, update_record
from environments.tests.factories import make_environment
from webhooks.bulk import Selection, bulk_resend_step, start_bulk_resend
from webhooks.delivery import ledger, sweeper
from webhooks.delivery.sending import attempt_delivery, drain, new_owner
from webhooks.lifecycle import pause_webhook, resume_webhook
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_delivery, make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)

PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def deliveries_of(webhook) -> list[Delivery]:
    return list(Delivery.objects.filter(webhook=webhook).order_by("id"))


def received_names(receiver) -> list[str]:
    """The first names the receiver got, in the order it got them (each change sets a new first name)."""
    return [json.loads(request.body)["data"]["fields"]["first_name"] for request in receiver.requests]


def make_due(*deliveries) -> None:
    Delivery.objects.filter(pk__in=[each.pk for each in deliveries]).update(next_attempt_at=timezone.now())


def changes(environment, names_by_record: dict[str, list[str]]) -> dict[str, object]:
    """For each record, create it with the first name and update it with each next one, records interleaved."""
    records = {}
    longest = max(len(names) for names in names_by_record.values())
    for step in range(longest):
        for key, names in names_by_record.items():
            if step >= len(names):
                continue
            if step == 0:
                records[key] = create_record(environment, "patients", {**PATIENT, "first_name": names[0]})
            else:
                records[key] = update_record(records[key], {"first_name": names[step]})
    return records


def test_per_record_a_change_waiting_for_a_retry_holds_its_records_later_changes_and_no_other_records():
    environment = make_environment()
    refusing = {"A1"}  # the receiver cannot take A1 yet (say, a referenced record it has not got)

    def judge(body, headers):
        return Answer(500) if json.loads(body)["data"]["fields"]["first_name"] in refusing else Answer()

    with Receiver(judge=judge) as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="record")
        changes(environment, {"a": ["A1", "A2", "A3"], "b": ["B1", "B2"]})
        a1, b1, a2, b2, a3 = deliveries_of(webhook)

        assert not attempt_delivery(a1.pk).succeeded
        a1.refresh_from_db()
        assert a1.status == Delivery.Status.RETRYING

        # A's later changes are due, but wait behind A1 (retried, and refused, as B's success makes it due);
        # B's go, in their own order.
        make_due(a2, a3, b1, b2)
        Delivery.objects.filter(pk=b1.pk).update(leased_until=None, lease_owner="")
        drain(webhook.pk)
        assert [name for name in received_names(receiver) if name != "A1"] == ["B1", "B2"]
        held = Delivery.objects.filter(webhook=webhook, status="pending")
        assert set(held) == {a2, a3} and not held.head_of_line().exists()

        # The receiver takes A1 now: its retry gets through, and the line moves on, oldest first.
        refusing.clear()
        make_due(a1)
        drain(webhook.pk)

    assert [name for name in received_names(receiver) if name.startswith("A")][-3:] == ["A1", "A2", "A3"]
    assert {each.status for each in deliveries_of(webhook)} == {Delivery.Status.SUCCEEDED}


def test_giving_up_on_the_head_of_a_line_releases_the_next_change_of_its_record(settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0]  # one attempt: a failure is final
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="record")
        changes(environment, {"a": ["A1", "A2"]})
        a1, a2 = deliveries_of(webhook)
        receiver.answer(500)
        attempt_delivery(a1.pk)
        a1.refresh_from_db()
        assert a1.status == Delivery.Status.FAILED
        drain(webhook.pk)

    assert received_names(receiver) == ["A1", "A2"]
    a2.refresh_from_db()
    assert a2.status == Delivery.Status.SUCCEEDED


def test_strict_order_sends_one_request_at_a_time_oldest_first_and_a_failure_holds_every_record():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="strict", max_in_flight=8)
        changes(environment, {"a": ["A1"], "b": ["B1"], "c": ["C1"]})
        a1, b1, c1 = deliveries_of(webhook)
        now = timezone.now()
        Delivery.objects.filter(webhook=webhook).update(leased_until=None, lease_owner="")

        # One slot, whatever max_in_flight says: a second owner gets nothing while the first holds its batch.
        _, first, _ = ledger.claim(owner=new_owner(), now=now, env_cap=64, margin=30, webhook_id=webhook.pk, limit=5)
        # A batch in commit order, to be sent one after another by this owner alone.
        assert [each.id for each in first] == [a1.pk, b1.pk, c1.pk]
        _, second, _ = ledger.claim(owner=new_owner(), now=now, env_cap=64, margin=30, webhook_id=webhook.pk, limit=5)
        assert second == []
        Delivery.objects.filter(webhook=webhook).update(leased_until=None, lease_owner="")

        receiver.answer(500)
        attempt_delivery(a1.pk)
        drain(webhook.pk)
        assert received_names(receiver) == ["A1"], "B1 and C1 wait while A1 waits for its retry"

        make_due(a1)
        drain(webhook.pk)

    assert received_names(receiver) == ["A1", "A1", "B1", "C1"]


def test_a_batch_of_several_records_is_in_the_shared_line_which_waits_for_every_older_delivery():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="record", max_events_per_request=10)
        changes(environment, {"a": ["A1"]})
        [only_a] = deliveries_of(webhook)
        assert only_a.record_id is not None and only_a.record_id != Delivery.SHARED_LINE
        changes(environment, {"b": ["B1"]})
        [batch] = deliveries_of(webhook)
        assert batch.event_count == 2 and batch.record_id == Delivery.SHARED_LINE


def in_line_by_sql(predicate: str = ledger.IN_LINE_SQL, now=None) -> set[int]:
    """The deliveries the ledger's predicate selects, webhook by webhook (as its claims ask it)."""
    selected = set()
    with connection.cursor() as cursor:
        for webhook_id in Webhook.objects.values_list("pk", flat=True):
            cursor.execute(
                f"SELECT d.id FROM {ledger.DELIVERY} d JOIN {ledger.WEBHOOK} w ON w.id = d.webhook_id"  # noqa: S608
                f" WHERE d.webhook_id = %(webhook)s AND {predicate}",
                {"now": now, "webhook": webhook_id},
            )
            selected |= {row[0] for row in cursor.fetchall()}
    return selected


def test_the_ledger_and_the_queryset_agree_on_which_deliveries_are_at_the_head_of_their_line():
    environment = make_environment()
    orderings = ["none", "record", "strict"]
    webhooks = [make_webhook(environment, "http://127.0.0.1:9999/hooks", ordering=each) for each in orderings]
    record_a, record_b = (
        create_record(environment, "patients", PATIENT),
        create_record(environment, "patients", PATIENT),
    )
    Delivery.objects.all().delete()
    lines = [record_a.id, record_b.id, Delivery.SHARED_LINE, record_a.id, None, record_b.id, record_a.id]
    statuses = ["retrying", "succeeded", "pending", "pending", "pending", "failed", "pending"]
    for webhook in webhooks:
        for line, status in zip(lines, statuses, strict=True):
            make_delivery(webhook, status=status, record_id=line, next_attempt_at=timezone.now())
        make_delivery(webhook, status="pending", is_test=True, next_attempt_at=timezone.now())

    by_queryset = set(Delivery.objects.head_of_line().values_list("pk", flat=True))
    assert by_queryset == in_line_by_sql()
    # The webhook in parallel has no lines; strict lets only its oldest waiting one go (and tests).
    assert set(Delivery.objects.filter(webhook=webhooks[0]).values_list("pk", flat=True)) <= by_queryset
    strict_heads = Delivery.objects.filter(webhook=webhooks[2], pk__in=by_queryset, is_test=False)
    assert [each.status for each in strict_heads] == ["retrying"]

    # What a claim of a webhook's deliveries oldest first may take with it: older ones it can take too.
    now = timezone.now()
    Delivery.objects.filter(status="retrying").update(next_attempt_at=now)
    claimable = set(Delivery.objects.claimable_in_line(now).values_list("pk", flat=True))
    assert claimable == in_line_by_sql(ledger.IN_LINE_OLDEST_FIRST_SQL, now)
    assert Delivery.objects.filter(webhook=webhooks[2], pk__in=claimable, is_test=False).count() == 7
    Delivery.objects.filter(webhook=webhooks[2], status="retrying").update(next_attempt_at=now + datetime.timedelta(1))
    held_back = set(Delivery.objects.claimable_in_line(now).values_list("pk", flat=True))
    assert held_back == in_line_by_sql(ledger.IN_LINE_OLDEST_FIRST_SQL, now)
    assert Delivery.objects.filter(webhook=webhooks[2], pk__in=held_back, is_test=False).count() == 1


def test_a_rate_limit_spaces_requests_across_every_sender_and_a_closed_gate_leases_nothing():
    environment = make_environment()
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks", max_per_second=5)
    first, second = (make_delivery(webhook, status="pending", next_attempt_at=timezone.now()) for _ in range(2))
    now = timezone.now()
    assert ledger.mark_sending(first.pk, webhook.pk, now, 5.0)
    assert not ledger.mark_sending(second.pk, webhook.pk, now + datetime.timedelta(seconds=0.15), 5.0)
    target, claimed, _ = ledger.claim(
        owner=new_owner(), now=now + datetime.timedelta(seconds=0.1), env_cap=64, margin=30, webhook_id=webhook.pk
    )
    assert claimed == [] and target.gate_opens_at(now) is not None
    assert ledger.mark_sending(second.pk, webhook.pk, now + datetime.timedelta(seconds=0.21), 5.0)


def test_a_429_with_retry_after_slows_the_webhook_down_for_that_long_without_counting_as_a_failure():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        changes(environment, {"a": ["A1"], "b": ["B1"]})
        a1, b1 = deliveries_of(webhook)
        receiver.answer(429, headers={"Retry-After": "3"})
        started = timezone.now()
        attempt = attempt_delivery(a1.pk, now=started)

        assert attempt.status_code == 429
        webhook.refresh_from_db()
        a1.refresh_from_db()
        assert webhook.failing_since is None, "pacing is not failing"
        assert abs((webhook.slowed_until - started).total_seconds() - 3) < 1
        assert "Retry-After 3" in webhook.slowed_reason
        assert a1.status == Delivery.Status.RETRYING and a1.probes == 1, "its place in the retry schedule is kept"
        # No other delivery of the webhook goes before then, by any sender.
        Delivery.objects.filter(pk=b1.pk).update(leased_until=None, lease_owner="")
        assert attempt_delivery(b1.pk) is None
        assert len(receiver.requests) == 1


def test_a_send_by_hand_takes_one_of_the_webhooks_slots_too():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, max_in_flight=1)
        held = make_delivery(webhook, status="pending", next_attempt_at=timezone.now())
        other = make_delivery(webhook, status="succeeded")
        _, claimed, _ = ledger.claim(owner="a worker", now=timezone.now(), env_cap=64, margin=30, delivery_id=held.pk)
        assert claimed, "a worker holds the webhook's only slot"

        assert attempt_delivery(other.pk, trigger=Attempt.Trigger.RESEND) is None
        assert receiver.requests == []


def test_a_request_marked_but_never_recorded_becomes_an_attempt_whose_outcome_is_unknown_and_is_sent_again():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, timeout_seconds=1)
        changes(environment, {"a": ["A1"]})
        [delivery] = deliveries_of(webhook)
        # A worker leased it and marked it: then it was killed, before recording anything.
        started = timezone.now()
        assert ledger.mark_sending(delivery.pk, webhook.pk, started, None)

        sweeper.run(started)
        assert not delivery.attempts.exists(), "its lease still runs: its worker may be sending it"

        after_lease = started + datetime.timedelta(seconds=ledger.lease_seconds(1, 30) + 1)
        sweeper.run(after_lease)
        [unknown] = delivery.attempts.all()
        assert unknown.number == 1 and unknown.error == Attempt.OUTCOME_UNKNOWN
        assert unknown.outcome == "outcome unknown: the worker stopped"
        assert unknown.started_at == started
        webhook.refresh_from_db()
        assert webhook.failing_since is None, "a stopped worker says nothing about the receiver"

        Delivery.objects.filter(pk=delivery.pk).update(leased_until=None, lease_owner="")
        again = attempt_delivery(delivery.pk)

    assert again.number == 2 and again.succeeded
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED and delivery.sending_since is None


def test_pausing_and_resuming_keeps_each_records_order():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="record")
        pause_webhook(webhook)
        changes(environment, {"a": ["A1", "A2", "A3"], "b": ["B1", "B2"]})
        assert receiver.requests == []
        resume_webhook(Webhook.objects.get(pk=webhook.pk))
        drain(webhook.pk)

    names = received_names(receiver)
    assert [name for name in names if name.startswith("A")] == ["A1", "A2", "A3"]
    assert [name for name in names if name.startswith("B")] == ["B1", "B2"]


def test_a_recovery_of_an_ordered_webhook_sends_no_change_ahead_of_an_older_one_of_its_record_still_waiting():
    environment = make_environment()
    refusing = {"A1"}

    def judge(body, headers):
        return Answer(500) if json.loads(body)["data"]["fields"]["first_name"] in refusing else Answer()

    with Receiver(judge=judge) as receiver:
        webhook = make_webhook(environment, receiver.url, ordering="record")
        changes(environment, {"a": ["A1", "A2"], "b": ["B1"]})
        # As a long outage leaves them: all waiting for a retry, B1 given up on.
        later = timezone.now() + datetime.timedelta(hours=1)
        Delivery.objects.filter(webhook=webhook).update(
            status="retrying", attempt_count=3, next_attempt_at=later, leased_until=None, lease_owner=""
        )
        Delivery.objects.filter(webhook=webhook, pk=deliveries_of(webhook)[1].pk).update(status="failed")
        job = start_bulk_resend(Selection(Webhook.objects.get(pk=webhook.pk)))

        bulk_resend_step(job.pk)
        assert received_names(receiver) == ["A1", "B1"], "A1 is refused again: A2 waits behind it, B1 goes"

        refusing.clear()
        for _ in range(20):
            if bulk_resend_step(job.pk) is None:
                break
        make_due(*deliveries_of(webhook))
        drain(webhook.pk)

    names = received_names(receiver)
    assert [name for name in names if name.startswith("A")] == ["A1", "A1", "A2"]
