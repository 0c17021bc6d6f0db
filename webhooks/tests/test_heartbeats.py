"""Heartbeats tell quiet from broken: after N quiet minutes a signed `webhook.heartbeat` carries the last number
sent; events flowing keep them away; they never touch the webhook's health and are never retried.

A real worker with beat scans every half second (WEBHOOK_HEARTBEAT_SCAN_SECONDS); instead of waiting minutes,
the tests move the webhook's last-sent time (`last_triggered_at`) back in the database.
"""

import datetime
import json
import time

import pytest
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook

from conftest import wait_for
from environments.records import create_record
from webhooks import heartbeats
from webhooks.delivery import bodies
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

PATIENT = {"status": "active", "first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10"}
SCAN = {"WEBHOOK_HEARTBEAT_SCAN_SECONDS": "0.5"}


def quiet_for(webhook, seconds: float) -> None:
    """As if the last request to the webhook left `seconds` ago."""
    Webhook.objects.filter(pk=webhook.pk).update(last_triggered_at=timezone.now() - datetime.timedelta(seconds=seconds))


def heartbeats_received(receiver) -> list[dict]:
    events = [json.loads(request.body) for request in receiver.requests]
    return [event for event in events if event["type"] == "webhook.heartbeat"]


def deliver(environment, webhook, receiver, count: int) -> None:
    for _ in range(count):
        create_record(environment, "patients", PATIENT)
    wait_for(
        lambda: (
            Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED, is_test=False).count() == count
        ),
        timeout=30,
        message=f"{count} deliveries",
    )


@pytest.mark.django_db(transaction=True)
def test_a_quiet_webhook_gets_a_signed_heartbeat_on_time_with_the_last_number_sent(start_worker, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"], heartbeat_minutes=1)
        start_worker(**SCAN)
        deliver(env, webhook, receiver, 2)
        quiet_for(webhook, 58)
        started = time.monotonic()
        wait_for(lambda: heartbeats_received(receiver), timeout=15, message="a heartbeat")
        waited = time.monotonic() - started
        time.sleep(2)  # the clock starts again from the heartbeat: no second one a scan later

    assert 1.5 <= waited <= 5, f"the heartbeat came after {waited:.1f} s, not 2 s (and a scan) after its minute"
    [heartbeat] = [r for r in receiver.requests if json.loads(r.body)["type"] == "webhook.heartbeat"]
    event = StandardWebhook(webhook.plain_secret).verify(heartbeat.body, heartbeat.headers)
    assert event["data"] == {"last_sequence": 2, "heartbeat_minutes": 1}
    assert "sequence" not in event and "webhook-test" not in heartbeat.headers
    delivery = Delivery.objects.get(webhook=webhook, is_heartbeat=True)
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert list(delivery.attempts.values_list("trigger", flat=True)) == [Attempt.Trigger.HEARTBEAT]


@pytest.mark.django_db(transaction=True)
def test_heartbeats_stop_while_real_events_flow_and_come_back_when_they_stop(start_worker, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"], heartbeat_minutes=1)
        start_worker(**SCAN)
        quiet_for(webhook, 58)  # a heartbeat is due in 2 s, unless something is sent before
        flowing_until = time.monotonic() + 5
        while time.monotonic() < flowing_until:
            create_record(env, "patients", PATIENT)
            time.sleep(0.3)
        assert heartbeats_received(receiver) == [], "a heartbeat while events flowed"
        quiet_for(webhook, 59)
        wait_for(lambda: heartbeats_received(receiver), timeout=10, message="a heartbeat once events stopped")
    sent = max(json.loads(r.body).get("sequence", 0) for r in receiver.requests)
    assert heartbeats_received(receiver)[0]["data"]["last_sequence"] == sent


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", [500, 410])
def test_a_failed_heartbeat_leaves_the_webhook_s_health_untouched_and_is_not_retried(start_worker, env, status):
    with Receiver(default=Answer(status=status)) as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"], heartbeat_minutes=5)
        start_worker(**SCAN)
        quiet_for(webhook, 301)
        wait_for(lambda: receiver.requests, timeout=15, message="a heartbeat")
        time.sleep(3)  # several scans, and the retry schedule's first step (at once, then 5 s)
    assert len(receiver.requests) == 1
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.ACTIVE and webhook.failing_since is None
    delivery = Delivery.objects.get(webhook=webhook, is_heartbeat=True)
    assert delivery.status == Delivery.Status.FAILED and delivery.attempt_count == 1
    assert delivery.next_attempt_at is None


@pytest.mark.django_db
def test_the_history_shows_heartbeats_as_heartbeats(client, director, env):
    webhook = make_webhook(env, "http://127.0.0.1:9999/hooks", heartbeat_minutes=10)
    heartbeats.new_heartbeat(webhook, timezone.now())
    page = client.get(f"/e/{env.slug}/webhooks/{webhook.pk}/deliveries/").content.decode()
    assert "webhook.heartbeat" in page and ">Heartbeat</span>" in page and ">test</span>" not in page


@pytest.mark.django_db
def test_a_thin_webhook_s_heartbeat_keeps_its_data():
    from environments.tests.factories import make_environment

    environment = make_environment("clinic")
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks", payload_format="thin", heartbeat_minutes=10)
    delivery = heartbeats.new_heartbeat(webhook, timezone.now())
    assert json.loads(bodies.body_of(delivery.pk, webhook))["data"] == {"last_sequence": 0, "heartbeat_minutes": 10}


@pytest.mark.django_db
def test_only_active_quiet_webhooks_with_heartbeats_on_and_none_waiting_are_chosen(env):
    now = timezone.now()
    long_ago = now - datetime.timedelta(minutes=11)
    quiet = make_webhook(env, "http://127.0.0.1:9999/a", heartbeat_minutes=10)
    busy = make_webhook(env, "http://127.0.0.1:9999/b", heartbeat_minutes=10)
    off = make_webhook(env, "http://127.0.0.1:9999/c")
    paused = make_webhook(env, "http://127.0.0.1:9999/d", heartbeat_minutes=10)
    Webhook.objects.filter(pk__in=[quiet.pk, off.pk, paused.pk]).update(last_triggered_at=long_ago)
    Webhook.objects.filter(pk=busy.pk).update(last_triggered_at=now - datetime.timedelta(minutes=5))
    Webhook.objects.filter(pk=paused.pk).update(state=Webhook.State.PAUSED)
    assert [webhook.pk for webhook in heartbeats.quiet_webhooks(now)] == [quiet.pk]
    assert heartbeats.scan(now) == 1
    assert heartbeats.scan(now) == 0, "a second heartbeat while the first still waits"
    # One nobody took up is discarded after a minute, and the next scan writes another.
    assert heartbeats.scan(now + datetime.timedelta(minutes=2)) == 1
    assert Delivery.objects.filter(webhook=quiet, status=Delivery.Status.DISCARDED).count() == 1


@pytest.mark.django_db
def test_a_heartbeat_whose_worker_stopped_mid_send_does_not_hold_back_the_next(env):
    now = timezone.now()
    webhook = make_webhook(env, "http://127.0.0.1:9999/a", heartbeat_minutes=10)
    Webhook.objects.filter(pk=webhook.pk).update(last_triggered_at=now - datetime.timedelta(minutes=11))
    stopped = heartbeats.new_heartbeat(webhook, now)
    # What the sweeper leaves of it: an attempt of unknown outcome, still pending (a test is never due again).
    Delivery.objects.filter(pk=stopped.pk).update(attempt_count=1)
    assert heartbeats.scan(now + datetime.timedelta(minutes=2)) == 1
    stopped.refresh_from_db()
    assert stopped.status == Delivery.Status.DISCARDED
