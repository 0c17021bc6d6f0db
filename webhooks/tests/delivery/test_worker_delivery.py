"""Deliveries through a real Celery worker on the real Redis, to real receivers, including crashes.

Every event reaches every subscribed webhook at least once, with the same
`webhook-id` on every try, whatever happens to the worker or to Redis.
"""

import json
import time

import redis
from django.conf import settings
from standardwebhooks import Webhook as StandardWebhook

from conftest import kill_process_group, wait_for
from credentials.tests.factories import form_post, make_client, make_credential
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.lifecycle import pause_webhook, resume_webhook
from webhooks.models import Delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def names_received(receiver) -> list[str]:
    return [json.loads(request.body)["data"]["fields"]["first_name"] for request in receiver.requests]


def test_a_data_api_write_reaches_the_receiver_signed_for_the_standardwebhooks_library(start_worker, client):
    start_worker()
    environment = make_environment("clinic")
    api_client = make_client(environment)
    _, secret = make_credential(api_client)
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        token = form_post(
            client,
            "/oauth/token",
            {"grant_type": "client_credentials", "client_id": api_client.client_id, "client_secret": secret},
        ).json()["access_token"]
        response = client.post(
            "/api/v1/clinic/patients/",
            {"fields": PATIENT, "external_id": "p-42"},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.content
        wait_for(lambda: receiver.requests, timeout=30, message="the webhook request")

    [request] = receiver.requests
    event = StandardWebhook(webhook.plain_secret).verify(request.body, request.headers)
    assert event["type"] == "patients.created"
    assert event["data"]["id"] == response.json()["id"]
    assert event["data"]["external_id"] == "p-42"
    delivery = wait_for(
        lambda: Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED).first(),
        timeout=10,
        message="the delivery to be recorded as succeeded",
    )
    assert delivery.message_id == request.headers["webhook-id"]


def test_pause_then_resume_sends_what_waited_in_order(start_worker):
    start_worker()
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        pause_webhook(webhook)
        for n in range(5):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        # Long enough for several sweeps: nothing may go out while paused.
        wait_for(
            lambda: Delivery.objects.filter(webhook=webhook).count() == 5, timeout=5, message="five waiting deliveries"
        )
        time.sleep(2.5)
        assert receiver.requests == []

        resume_webhook(webhook)
        wait_for(lambda: len(receiver.requests) == 5, timeout=30, message="five requests after resume")
    assert names_received(receiver) == ["P0", "P1", "P2", "P3", "P4"]


def test_a_worker_killed_mid_delivery_leaves_it_to_the_next_worker_with_the_same_webhook_id(start_worker):
    first = start_worker()
    environment = make_environment()
    with Receiver() as receiver:
        # The first request hangs, so the worker is killed while it is sending.
        receiver.answer(200, delay=30)
        webhook = make_webhook(environment, receiver.url, timeout_seconds=2)
        create_record(environment, "patients", PATIENT)
        wait_for(lambda: receiver.requests, timeout=30, message="the first request to arrive")
        kill_process_group(first)
        delivery = Delivery.objects.get(webhook=webhook)
        assert delivery.status == Delivery.Status.PENDING and delivery.attempt_count == 0

        start_worker()
        wait_for(
            lambda: Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SUCCEEDED).exists(),
            timeout=60,
            message="the delivery to succeed on the second worker",
        )
    assert len(receiver.requests) == 2
    assert {request.headers["webhook-id"] for request in receiver.requests} == {delivery.message_id}
    assert receiver.requests[0].body == receiver.requests[1].body


def test_a_flushed_redis_delays_deliveries_but_loses_none(start_worker):
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        for n in range(4):
            create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
        # The tasks were queued with no worker running; now the queue is lost.
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        assert broker.llen("celery") >= 4
        broker.flushdb()

        start_worker()
        wait_for(lambda: len(receiver.requests) >= 4, timeout=60, message="all four deliveries after the flush")

    assert sorted(names_received(receiver)) == ["P0", "P1", "P2", "P3"]
    message_ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert message_ids == set(Delivery.objects.filter(webhook=webhook).values_list("message_id", flat=True))
