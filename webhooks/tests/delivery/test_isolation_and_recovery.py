"""A slow or failing receiver costs its own webhook only, and a receiver that comes back gets its backlog at once.

In-process tests move the clock; the worker tests run a real Celery worker
(threads pool) against receivers that hang and drip.
"""

import datetime
import json

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from conftest import wait_for
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import make_environment
from portal.actor import Actor
from webhooks.delivery import ledger, sweeper
from webhooks.delivery.sending import attempt_delivery, drain
from webhooks.manual import retry_now
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_delivery, make_webhook
from webhooks.tests.misbehaving import Misbehaving
from webhooks.tests.receiver import Receiver

PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def names_received(receiver) -> list[str]:
    return [json.loads(request.body)["data"]["fields"]["first_name"] for request in receiver.requests]


def most_attempts_at_once(webhook) -> int:
    """The most attempts to this webhook that were in flight at the same moment, from the history."""
    edges = []
    for started, duration in Attempt.objects.filter(delivery__webhook=webhook).values_list("started_at", "duration_ms"):
        edges += [(started, 1), (started + datetime.timedelta(milliseconds=duration), -1)]
    most = current = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        current += change
        most = max(most, current)
    return most


def make_failed_backlog(webhook, environment, receiver, count: int):
    """`count` deliveries whose first attempts failed: each now waits minutes for its next retry."""
    for n in range(count):
        create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
    start = timezone.now()
    for delivery in Delivery.objects.filter(webhook=webhook).order_by("id"):
        receiver.answer(503)
        attempt_delivery(delivery.pk, now=start)
        receiver.answer(503)
        attempt_delivery(delivery.pk, now=start + datetime.timedelta(seconds=10))
    return start


@pytest.mark.django_db(transaction=True)
class TestInProcess:
    def test_the_cap_limits_how_many_workers_send_to_one_webhook_at_once(self, settings):
        environment = make_environment()
        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url, max_in_flight=2)
            other = make_webhook(environment, receiver.url, max_in_flight=2)
        now = timezone.now()
        for hook in (webhook, other):
            for _ in range(5):
                make_delivery(hook, status=Delivery.Status.PENDING, next_attempt_at=now)

        def claim(owner, hook):
            return ledger.claim(owner=owner, now=now, env_cap=64, margin=30, webhook_id=hook.pk, limit=1)[1]

        assert claim("a", webhook) and claim("b", webhook)
        assert claim("c", webhook) == [], "two slots taken: a third worker gets nothing"
        assert claim("c", other), "another webhook's slots are its own"
        assert claim("a", webhook), "a holder may lease more in its own slot"

    def test_a_batch_claim_leases_the_oldest_due_deliveries_first_up_to_the_limit(self):
        environment = make_environment()
        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url)
        for _ in range(5):
            make_delivery(webhook, status=Delivery.Status.PENDING, next_attempt_at=timezone.now())
        ids = list(Delivery.objects.filter(webhook=webhook).order_by("id").values_list("pk", flat=True))
        _, claimed, _ = ledger.claim(
            owner="a", now=timezone.now(), env_cap=64, margin=30, webhook_id=webhook.pk, limit=3
        )
        assert [each.id for each in claimed] == ids[:3]

    def test_a_probe_that_fails_keeps_the_delivery_in_its_place_in_the_retry_schedule(self):
        environment = make_environment()
        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url)
            make_failed_backlog(webhook, environment, receiver, 1)
            delivery = Delivery.objects.get(webhook=webhook)
            due_before = delivery.next_attempt_at
            receiver.answer(503)
            sweeper.probe(webhook.pk)
        delivery.refresh_from_db()
        assert delivery.attempt_count == 3 and delivery.probes == 1
        assert delivery.next_attempt_at == due_before and delivery.status == Delivery.Status.RETRYING
        assert delivery.attempts.order_by("-number").first().trigger == Attempt.Trigger.PROBE

    def test_when_a_probe_gets_through_everything_that_waited_is_sent_at_once_oldest_first(self):
        environment = make_environment()
        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url)
            make_failed_backlog(webhook, environment, receiver, 5)
            webhook.refresh_from_db()
            assert webhook.failing_since is not None
            receiver.requests.clear()

            sweeper.probe(webhook.pk)

        assert names_received(receiver) == ["P0", "P1", "P2", "P3", "P4"]
        assert set(Delivery.objects.filter(webhook=webhook).values_list("status", flat=True)) == {"succeeded"}
        webhook.refresh_from_db()
        assert webhook.failing_since is None

    def test_the_sweeper_probes_a_failing_webhook_once_its_probe_interval_has_passed(self, settings):
        settings.WEBHOOK_PROBE_MIN_SECONDS = 5
        environment = make_environment()
        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url)
            make_failed_backlog(webhook, environment, receiver, 2)
        webhook.refresh_from_db()
        assert sweeper.webhooks_to_probe(webhook.last_triggered_at + datetime.timedelta(seconds=1)) == []
        later = webhook.last_triggered_at + datetime.timedelta(seconds=6)
        assert sweeper.webhooks_to_probe(later) == [webhook.pk]

    def test_retry_now_makes_waiting_deliveries_due_and_is_audited(self):
        environment = make_environment()
        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url)
            make_failed_backlog(webhook, environment, receiver, 3)
            receiver.requests.clear()
            assert retry_now(webhook, actor=Actor.for_task("ops")) == 3
            drain(webhook.pk)
        assert names_received(receiver) == ["P0", "P1", "P2"]
        event = AuditEvent.objects.get(action="webhook.retried_now")
        assert event.details == {"deliveries": 3} and event.actor_label == "ops"

    def test_an_attempt_is_recorded_even_when_the_database_connection_breaks_after_the_post(self):
        if connection.vendor != "postgresql":
            pytest.skip("terminating a backend needs PostgreSQL")  # CI runs on PostgreSQL
        environment = make_environment()
        connection.ensure_connection()
        settings_dict = connection.settings_dict
        dsn = (
            f"host={settings_dict['HOST'] or '127.0.0.1'} port={settings_dict['PORT'] or 5432}"
            f" user={settings_dict['USER'] or 'postgres'} dbname={settings_dict['NAME']}"
        )
        backend = connection.connection.info.backend_pid

        with Receiver() as receiver:
            webhook = make_webhook(environment, receiver.url)
            create_record(environment, "patients", PATIENT)
            delivery = Delivery.objects.get(webhook=webhook)
            # While the receiver holds the request, the worker's database connection is cut.
            receiver.answer(200, delay=0.3)
            with psycopg.connect(dsn, autocommit=True) as admin:
                import threading

                def cut():
                    wait_for(lambda: receiver.requests, timeout=5, interval=0.01, message="the request")
                    admin.execute("SELECT pg_terminate_backend(%s)", [backend])

                cutter = threading.Thread(target=cut)
                cutter.start()
                attempt = attempt_delivery(delivery.pk)
                cutter.join()

        assert len(receiver.requests) == 1
        assert attempt.succeeded
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.SUCCEEDED
        assert list(delivery.attempts.values_list("status_code", flat=True)) == [200]


def test_a_hanging_and_a_dripping_receiver_do_not_hold_up_a_healthy_webhook(start_worker, settings):
    cap = settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK
    start_worker()
    environment = make_environment()
    with Receiver() as healthy, Misbehaving("hang") as hanging, Misbehaving("drip", interval=0.3) as dripping:
        make_webhook(environment, hanging.url, timeout_seconds=3, name="Hangs")
        make_webhook(environment, dripping.url, timeout_seconds=3, name="Drips")
        good = make_webhook(environment, healthy.url, name="Healthy")
        for n in range(20):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        wait_for(lambda: len(healthy.requests) == 20, timeout=20, message="the healthy webhook's 20 deliveries")
        # The healthy webhook got everything while the bad ones were still timing out, slots never over the cap.
        bad_waiting = Delivery.objects.filter(status__in=Delivery.WAITING).exclude(webhook=good).count()
        assert bad_waiting > 0
        timed_out = Attempt.objects.filter(error="timeout")
        wait_for(lambda: timed_out.count() >= 2 * cap, timeout=10, message="the bad receivers' attempts to time out")
        for bad in Webhook.objects.exclude(pk=good.pk):
            assert most_attempts_at_once(bad) <= cap, f"{bad.name} had more requests in flight than its cap"

    assert sorted(names_received(healthy)) == sorted(f"P{n}" for n in range(20))
    assert max(timed_out.values_list("duration_ms", flat=True)) < 4000, "no attempt outlives its timeout by 1 s"
    assert Webhook.objects.get(pk=good.pk).failing_since is None
