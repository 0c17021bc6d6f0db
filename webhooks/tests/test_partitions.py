"""Attempts live in monthly partitions on PostgreSQL: months are made ahead, and retention drops whole months,
never one a waiting delivery still has attempts in."""

import datetime

import pytest
from django.db import connection
from django.utils import timezone

from environments.tests.factories import make_environment
from webhooks import partitions
from webhooks.models import Attempt, Delivery, ManualSend
from webhooks.tests.factories import make_delivery, make_webhook

RETENTION = datetime.timedelta(days=90)


def an_attempt(delivery: Delivery, started_at: datetime.datetime, number: int = 1) -> Attempt:
    return Attempt.objects.create(
        delivery=delivery,
        webhook_id=delivery.webhook_id,
        number=number,
        trigger=Attempt.Trigger.SCHEDULED,
        started_at=started_at,
        duration_ms=5,
        url="http://127.0.0.1:9999/hooks",
        status_code=200,
        succeeded=True,
    )


def months(*names: str) -> set[str]:
    return {f"webhooks_attempt_p{name}" for name in names}


@pytest.mark.django_db
def test_the_months_ahead_are_made_once_and_there_is_no_default_partition():
    now = datetime.datetime(2031, 11, 20, tzinfo=datetime.UTC)
    assert set(partitions.ensure_ahead(now, months=2)) == months("2031_11", "2031_12", "2032_01")
    assert partitions.ensure_ahead(now, months=2) == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT partdefid FROM pg_partitioned_table WHERE partrelid = 'webhooks_attempt'::regclass")
        assert cursor.fetchone()[0] == 0
    # The month just made takes that month's attempts.
    webhook = make_webhook(make_environment("clinic"), "http://127.0.0.1:9999/hooks")
    an_attempt(make_delivery(webhook), datetime.datetime(2032, 1, 31, 23, 59, tzinfo=datetime.UTC))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM webhooks_attempt_p2032_01")
        assert cursor.fetchone()[0] == 1


@pytest.mark.django_db(transaction=True)
def test_retention_drops_the_months_past_it_whole_but_not_one_a_waiting_delivery_has_attempts_in():
    partitions.create_months(datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC), datetime.datetime(2025, 3, 1))
    webhook = make_webhook(make_environment("clinic"), "http://127.0.0.1:9999/hooks")
    done, waiting, recent = (make_delivery(webhook, status=status) for status in ("succeeded", "retrying", "failed"))
    january = an_attempt(done, datetime.datetime(2025, 1, 10, tzinfo=datetime.UTC))
    an_attempt(done, datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC), number=2)
    an_attempt(waiting, datetime.datetime(2025, 2, 2, tzinfo=datetime.UTC))
    kept = an_attempt(recent, timezone.now())
    send = ManualSend.objects.create(webhook=webhook, kind="resend", delivery=done, requested_by="ann", attempt=january)

    result = partitions.drop_expired(RETENTION, now=datetime.datetime(2025, 7, 15, tzinfo=datetime.UTC))

    assert set(result.dropped) == months("2025_01", "2025_03")
    assert result.kept_for_waiting == ["webhooks_attempt_p2025_02"]
    assert set(Attempt.objects.values_list("delivery_id", "number")) == {
        (done.pk, 2),
        (waiting.pk, 1),
        (kept.delivery_id, 1),
    }
    # Deliveries stay (their own retention prunes them); what named a dropped attempt no longer does.
    assert Delivery.objects.filter(pk=done.pk).exists()
    send.refresh_from_db()
    assert send.attempt_id is None

    # Once the delivery has its outcome, its month goes on the next run.
    Delivery.objects.filter(pk=waiting.pk).update(status=Delivery.Status.FAILED)
    result = partitions.drop_expired(RETENTION, now=datetime.datetime(2025, 7, 16, tzinfo=datetime.UTC))
    assert result.dropped == ["webhooks_attempt_p2025_02"]
    assert list(Attempt.objects.values_list("pk", flat=True)) == [kept.pk]
