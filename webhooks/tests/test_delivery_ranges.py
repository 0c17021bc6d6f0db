"""Deliveries and their event links live in ranges of id on PostgreSQL: ranges are made ahead at the pace of
traffic, and retention drops whole ranges, never one holding a waiting delivery."""

import datetime

import pytest
from django.db import connection
from django.utils import timezone

from environments.models import Event
from environments.tests.factories import make_environment
from webhooks import checks, delivery_ranges
from webhooks.models import Attempt, Delivery, DeliveryEvent, ManualSend
from webhooks.tests.factories import make_delivery, make_webhook
from webhooks.tests.test_partitions import an_attempt

RETENTION = datetime.timedelta(days=90)


def next_id_at(next_id: int) -> None:
    """The next delivery gets `next_id` (as if that many had been made since)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval('webhooks_delivery_id_seq', %s, false)", [next_id])


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - a test's own name
        return cursor.fetchone()[0]


def days_ago(days: float) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


@pytest.fixture
def webhook():
    return make_webhook(make_environment("clinic"), "http://127.0.0.1:9999/hooks")


@pytest.fixture
def ranges_ahead_after():
    """A test that drops ranges and moves ids on leaves ranges ahead for the next tests."""
    yield
    delivery_ranges.ensure_ahead(ahead=3)


@pytest.fixture
def ids_given_back():
    """The sequence is not rolled back with a test's transaction, the ranges it made are: put it back."""
    last = delivery_ranges.last_id()
    yield
    next_id_at(last + 1)


@pytest.mark.django_db
def test_ranges_are_made_ahead_at_the_pace_of_traffic_and_there_is_no_default_partition(
    webhook, settings, ids_given_back
):
    settings.DELIVERY_RANGE_MIN_IDS = 10
    upper = delivery_ranges.ranges()[-1].upper
    next_id_at(upper - 100)
    make_delivery(webhook, created_at=days_ago(3.1))  # the first delivery of the current range
    make_delivery(webhook)
    # Two ids in 3.1 days is twenty a month: ranges of 20 ids, two ranges' worth of room past the last id.
    assert delivery_ranges.next_size() == 20
    assert delivery_ranges.ensure_ahead() == []  # 98 ids of room already
    settings.DELIVERY_RANGE_MIN_IDS = 1000
    made = delivery_ranges.ensure_ahead()
    assert made == [f"webhooks_delivery_ids_{upper}", f"webhooks_delivery_ids_{upper + 1000}"]
    assert delivery_ranges.ranges()[-1] == delivery_ranges.Range(upper + 1000, upper + 2000)
    assert delivery_ranges.ensure_ahead() == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_partitioned_table WHERE partdefid <> 0"
            " AND partrelid IN ('webhooks_delivery'::regclass, 'webhooks_deliveryevent'::regclass)"
        )
        assert cursor.fetchone()[0] == 0

    # The range just made takes its deliveries, and their links go to the links' range on the same bounds.
    next_id_at(upper + 5)
    delivery = make_delivery(webhook)
    event = Event.objects.create(environment=webhook.environment, type="patients.created")
    DeliveryEvent.objects.create(delivery=delivery, event=event, webhook=webhook, sequence=1)
    assert delivery.pk == upper + 5
    assert rows_in(f"webhooks_delivery_ids_{upper}") == 1
    assert rows_in(f"webhooks_deliveryevent_ids_{upper}") == 1


@pytest.mark.django_db(transaction=True)
def test_retention_drops_whole_ranges_past_it_but_not_one_holding_a_waiting_delivery(webhook, ranges_ahead_after):
    delivery_ranges.ensure_ahead(ahead=3)
    first, second, third = delivery_ranges.ranges()[:3]
    next_id_at(first.lower or 1)
    done = make_delivery(webhook, status="succeeded", created_at=days_ago(200))
    event = Event.objects.create(environment=webhook.environment, type="patients.created")
    DeliveryEvent.objects.create(delivery=done, event=event, webhook=webhook, sequence=1)
    resent = an_attempt(done, timezone.now(), number=2)  # re-sent by hand today: its month is kept
    ManualSend.objects.create(webhook=webhook, kind="resend", delivery=done, requested_by="ann", attempt=resent)
    next_id_at(second.lower)
    waiting = make_delivery(webhook, status="retrying", created_at=days_ago(200))
    next_id_at(third.lower)
    recent = make_delivery(webhook, status="succeeded", created_at=days_ago(200))
    today = make_delivery(webhook, status="failed")  # the third range is not past the retention

    result = delivery_ranges.drop_expired(RETENTION)

    assert result.dropped == [first.name]
    assert result.kept_for_waiting == [second.name]
    assert set(Delivery.objects.values_list("pk", flat=True)) == {waiting.pk, recent.pk, today.pk}
    # What named the dropped deliveries went with them; the event stays, for the stream's own retention.
    assert not Attempt.objects.exists()
    assert not ManualSend.objects.exists()
    assert not DeliveryEvent.objects.exists()
    assert Event.objects.filter(pk=event.pk).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s), to_regclass(%s)", [first.name, first.links])
        assert cursor.fetchone() == (None, None)

    # Once the waiting delivery has its outcome, its range goes on the next run.
    Delivery.objects.filter(pk=waiting.pk).update(status=Delivery.Status.FAILED)
    assert delivery_ranges.drop_expired(RETENTION).dropped == [second.name]
    assert Delivery.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_range_is_kept_when_a_delivery_in_it_goes_back_to_waiting_while_it_is_dropped(
    webhook, ranges_ahead_after, monkeypatch
):
    delivery_ranges.ensure_ahead(ahead=3)
    first, second = delivery_ranges.ranges()[:2]
    next_id_at(first.lower or 1)
    done = make_delivery(webhook, status="succeeded", created_at=days_ago(200))
    event = Event.objects.create(environment=webhook.environment, type="patients.created")
    DeliveryEvent.objects.create(delivery=done, event=event, webhook=webhook, sequence=1)
    next_id_at(second.lower)
    make_delivery(webhook)

    # A re-send is asked for just after the look before detaching found nothing waiting.
    original = delivery_ranges._holds_waiting

    def resent_just_after(name):
        found = original(name)
        Delivery.objects.filter(pk=done.pk).update(status=Delivery.Status.PENDING)
        return found

    monkeypatch.setattr(delivery_ranges, "_holds_waiting", resent_just_after)
    result = delivery_ranges.drop_expired(RETENTION)
    monkeypatch.undo()
    assert result.dropped == []
    assert result.kept_for_waiting == [first.name]
    assert Delivery.objects.get(pk=done.pk).status == Delivery.Status.PENDING
    assert delivery_ranges.ranges()[0] == first
    # Attached again whole: its links, and their foreign key to the deliveries.
    assert DeliveryEvent.objects.get().delivery_id == done.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND confrelid = %s::regclass",
            [first.links, "webhooks_delivery"],
        )
        assert cursor.fetchone()[0] == 1


def test_settings_that_keep_too_many_ranges_are_warned_of_with_the_range_days_that_would_do(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    assert checks.ranges_kept() == 3 + 2 + 2  # 90 days of month-long ranges, two ahead
    call_command("check", "--fail-level", "WARNING")  # the defaults pass

    settings.DELIVERY_RETENTION_DAYS = 6 * 365  # six years of month-long ranges: 75
    with pytest.raises(SystemCheckError) as raised:
        call_command("check", "--fail-level", "WARNING")
    assert "integration_tools.W103" in str(raised.value)
    assert "about 75 ranges" in str(raised.value) and "DELIVERY_RANGE_DAYS to 183 or more" in str(raised.value)
    settings.DELIVERY_RANGE_DAYS = 183
    call_command("check", "--fail-level", "WARNING")

    settings.DELIVERY_RANGES_AHEAD = 14  # room alone past the mark
    with pytest.raises(SystemCheckError) as raised:
        call_command("check", "--fail-level", "WARNING")
    assert "DELIVERY_RANGES_AHEAD to 13 or fewer" in str(raised.value)
