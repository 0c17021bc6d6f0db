"""The ledger's SQL predicates select exactly the rows their QuerySet twins select."""

import datetime
import time

import pytest
from django.db import connection
from django.utils import timezone

from environments.tests.factories import make_environment
from webhooks.delivery import ledger
from webhooks.models import Attempt, Delivery
from webhooks.tests.factories import make_delivery, make_webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries_in_every_state():
    webhook = make_webhook(make_environment(), "http://127.0.0.1:9999/hooks")
    now = timezone.now()
    past, future = now - datetime.timedelta(minutes=1), now + datetime.timedelta(minutes=1)
    made = []
    for status in Delivery.Status.values:
        for next_attempt_at in (None, past, now, future):
            for leased_until in (None, past, now, future):
                for owner in ("", "0f3a9c", Delivery.FAN_OUT_LEASE_MARK + "0f3a9c"):
                    made.append(
                        make_delivery(
                            webhook,
                            status=status,
                            next_attempt_at=next_attempt_at,
                            leased_until=leased_until,
                            lease_owner=owner if leased_until else "",
                        )
                    )
    return now, made


@pytest.mark.parametrize(
    ("sql", "queryset"),
    [
        (ledger.DUE_SQL, lambda now: Delivery.objects.due(now)),
        (ledger.LEASE_FREE_SQL, lambda now: Delivery.objects.lease_free(now)),
        (ledger.IN_FLIGHT_SQL, lambda now: Delivery.objects.in_flight(now)),
        (ledger.FAN_OUT_LEASED_SQL, lambda now: Delivery.objects.fan_out_leased(now)),
    ],
    ids=["due", "lease_free", "in_flight", "fan_out_leased"],
)
def test_each_sql_predicate_selects_the_same_rows_as_its_queryset_twin(deliveries_in_every_state, sql, queryset):
    now, made = deliveries_in_every_state
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {ledger.DELIVERY} WHERE {sql}", {"now": ledger.db_time(now)})  # noqa: S608
        by_sql = {row[0] for row in cursor.fetchall()}
    by_queryset = set(queryset(now).values_list("pk", flat=True))
    assert by_sql == by_queryset
    assert 0 < len(by_sql) < len(made), "the predicate tells rows apart"


@pytest.mark.django_db(transaction=True)
def test_recording_looks_for_more_due_deliveries_after_its_commit_at_the_databases_clock():
    # A change may commit a delivery after the worker took the moment it records with; the look must
    # still see it, or the fan-out, which left it to this worker's slot, would leave it waiting.
    webhook = make_webhook(make_environment(), "http://127.0.0.1:9999/hooks")
    recorded_at = timezone.now()
    make_delivery(
        webhook,
        status=Delivery.Status.PENDING,
        next_attempt_at=recorded_at + datetime.timedelta(milliseconds=200),
    )
    time.sleep(0.3)
    recorded = ledger.record([], {}, [], webhook_id=webhook.pk, now=recorded_at, succeeded=False)
    assert recorded.more_due


def an_attempt(delivery: Delivery) -> Attempt:
    return Attempt(
        delivery_id=delivery.pk,
        webhook_id=delivery.webhook_id,
        number=delivery.attempt_count + 1,
        trigger=Attempt.Trigger.SCHEDULED,
        started_at=timezone.now(),
        duration_ms=12,
        url="http://127.0.0.1:9999/hooks",
        request_headers={"webhook-id": delivery.message_id},
        status_code=200,
        response_headers={},
        succeeded=True,
    )


@pytest.mark.django_db(transaction=True)
def test_a_batch_written_again_after_a_broken_connection_is_not_recorded_twice():
    # The connection broke after the database committed the batch, before it said so: the worker writes again.
    webhook = make_webhook(make_environment(), "http://127.0.0.1:9999/hooks")
    deliveries = [make_delivery(webhook, status=Delivery.Status.PENDING) for _ in range(3)]
    first_try = [an_attempt(delivery) for delivery in deliveries]
    ledger.record(first_try, {}, [], webhook_id=webhook.pk, now=timezone.now(), succeeded=True)

    second_try = [an_attempt(delivery) for delivery in deliveries]
    ledger.record(second_try, {}, [], webhook_id=webhook.pk, now=timezone.now(), succeeded=True, again=True)

    assert Attempt.objects.filter(delivery__webhook=webhook).count() == 3
    assert [attempt.pk for attempt in second_try] == [attempt.pk for attempt in first_try]


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_first_try_did_not_commit_is_written_on_the_second():
    webhook = make_webhook(make_environment(), "http://127.0.0.1:9999/hooks")
    delivery = make_delivery(webhook, status=Delivery.Status.PENDING)
    attempt = an_attempt(delivery)
    ledger.record([attempt], {}, [], webhook_id=webhook.pk, now=timezone.now(), succeeded=True, again=True)
    assert Attempt.objects.get(delivery=delivery).pk == attempt.pk


def test_claims_inside_a_transaction_keep_the_cap_and_the_oldest_first_order():
    # Inside an outer transaction (and on SQLite) a claim runs statement by statement, not pipelined.
    environment = make_environment()
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks", max_in_flight=2)
    now = timezone.now()
    ids = [make_delivery(webhook, status="pending", next_attempt_at=now).pk for _ in range(3)]

    def claim(owner, limit=1):
        return ledger.claim(owner=owner, now=now, env_cap=64, margin=30, webhook_id=webhook.pk, limit=limit)[1]

    assert [each.id for each in claim("a")] == ids[:1]
    assert [each.id for each in claim("b")] == ids[1:2]
    assert claim("c") == []
    target, claimed, events = ledger.claim(owner="a", now=now, env_cap=64, margin=30, delivery_id=ids[2])
    assert target.id == webhook.pk and [each.id for each in claimed] == ids[2:] and events is None
