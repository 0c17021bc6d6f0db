"""Recover: re-send what failed or waits for a retry, in a range, oldest first, with the original webhook-id."""

import datetime
import io
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from environments.records import create_record
from webhooks.bulk import bulk_resend_step
from webhooks.delivery.fanout import new_message_id
from webhooks.models import BulkResend, Delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver
from webhooks.views import history as history_views

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def seed(webhook, statuses: list[str]) -> list[Delivery]:
    """One delivery per status, oldest first, as the engine leaves them."""
    for _ in statuses:
        create_record(webhook.environment, "patients", ADA)
    deliveries = list(webhook.deliveries.order_by("id"))
    later = timezone.now() + datetime.timedelta(hours=1)
    for delivery, status in zip(deliveries, statuses, strict=True):
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status,
            attempt_count=0 if status == "pending" else 3,
            next_attempt_at=later if status in ("pending", "retrying") else None,
            delivered_at=timezone.now() if status == "succeeded" else None,
            leased_until=None,  # the engine gives a lease back with each attempt it records
            lease_owner="",
        )
    return deliveries


def run_job() -> BulkResend:
    job = BulkResend.objects.get()
    while bulk_resend_step(job.pk) is not None:
        pass
    job.refresh_from_db()
    return job


def test_recover_sends_failed_and_retrying_deliveries_oldest_first_and_nothing_else(client, director, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        deliveries = seed(webhook, ["succeeded", "retrying", "pending", "failed", "discarded", "retrying"])
        expected = [deliveries[i].message_id for i in (1, 3, 5)]

        page = client.get(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/").content.decode()
        assert "3 deliveries will be re-sent" in page
        assert "1 failed" in page and "2 waiting for a retry" in page

        client.post(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"status": "recover"})
        job = run_job()
        received = [request.headers["webhook-id"] for request in receiver.requests]

    assert received == expected
    assert (job.total, job.done, job.succeeded, job.state) == (3, 3, 3, "done")
    statuses = list(webhook.deliveries.order_by("id").values_list("status", flat=True))
    assert statuses == ["succeeded", "succeeded", "pending", "succeeded", "discarded", "succeeded"]
    assert "3/3: 3 delivered by the job" in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()


def test_a_range_with_nothing_to_recover_says_why(client, director, env):
    webhook = make_webhook(env, "http://127.0.0.1:9999/hooks")
    seed(webhook, ["succeeded", "succeeded", "pending"])
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/?status=recover").content.decode()
    assert "Nothing to re-send: no delivery in this range is failed or waiting for a retry" in page
    assert "(1 pending, 2 succeeded)" in page
    assert "Re-send 0" not in page

    future = (timezone.now() + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/?since={future}").content.decode()
    assert "there are no deliveries in it at all" in page


def test_a_paused_webhook_is_not_recovered_and_the_page_says_resume_first(client, director, env):
    from webhooks.lifecycle import pause_webhook

    webhook = make_webhook(env, "http://127.0.0.1:9999/hooks")
    seed(webhook, ["failed"])
    pause_webhook(webhook)
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/").content.decode()
    assert "resume it before re-sending" in page
    client.post(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"status": "recover"})
    assert not BulkResend.objects.exists()


def test_the_history_offers_to_re_send_exactly_the_filtered_deliveries(client, director, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        seed(webhook, ["failed", "retrying", "failed", "succeeded"])
        page = client.get(f"/e/clinic/webhooks/{webhook.pk}/deliveries/?status=failed").content.decode()
        assert "Re-send these 2 (failed)" in page
        page = client.get(f"/e/clinic/webhooks/{webhook.pk}/deliveries/?event_type=patients.created").content.decode()
        assert "Re-send these 3 (failed or waiting for a retry)" in page

        client.post(
            f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"status": "failed", "event_type": "patients.created"}
        )
        job = run_job()
        assert len(receiver.requests) == 2
    assert (job.total, job.status_filter, job.event_type) == (2, "failed", "patients.created")


def test_resend_deliveries_recovers_by_default_and_says_why_when_there_is_nothing(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, name="Hook")
        seed(webhook, ["retrying", "failed", "pending"])
        out = io.StringIO()
        call_command("resend_deliveries", "--webhook", "clinic/Hook", "--json", stdout=out)
        assert json.loads(out.getvalue())["received"] == 2
        assert len(receiver.requests) == 2

    out = io.StringIO()
    call_command("resend_deliveries", "--webhook", "clinic/Hook", stdout=out)
    assert "Nothing to re-send" in out.getvalue() and "(1 pending, 2 succeeded)" in out.getvalue()


def test_the_history_counts_what_it_offers_to_re_send_only_up_to_a_bound(client, director, env):
    # The history is shown for every filter change; counting a million failures each time would be slow.
    webhook = make_webhook(env, "http://127.0.0.1:9999/hooks")
    Delivery.objects.bulk_create(
        Delivery(webhook=webhook, environment=env, message_id=new_message_id(), status="failed")
        for _ in range(history_views.RESEND_OFFER_COUNT_UP_TO + 1)
    )
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/deliveries/?status=failed").content.decode()
    assert "Re-send these 1,000+ (failed)" in page
    Delivery.objects.filter(pk=Delivery.objects.latest("id").pk).delete()
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/deliveries/?status=failed").content.decode()
    assert "Re-send these 1000 (failed)" in page
    confirmation = client.get(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/?status=failed").content.decode()
    assert "1000" in confirmation or "1,000" in confirmation, "the confirmation counts exactly"
