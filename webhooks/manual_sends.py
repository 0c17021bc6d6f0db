"""Sends asked for by hand are recorded here, queued for a worker, and read back by the page and the commands.

A test delivery, the signature self-test, URL verification and a re-send all
POST to a receiver that may hang for its whole timeout. The web request (or
command) only writes what was asked (the deliveries and a `ManualSend` row) and
returns; a worker carries it out (`carry_out.py`) and writes the result on the
row. The periodic sweep (`tasks.py`) queues again what a lost task left unfinished, so nothing
asked for is left pending for ever.
"""

from __future__ import annotations

import datetime
import secrets
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from environments.models import Event

from .delivery import queueing
from .delivery.fanout import new_message_id
from .models import Delivery, DeliveryEvent, ManualSend, Webhook

VERIFICATION_EVENT_TYPE = "webhook.verification"
# How long a command allows a worker to pick a send up, on top of the send's own timeouts.
PICKUP_SECONDS = 30


def new_test_delivery(
    webhook: Webhook,
    event_type: str,
    data: dict,
    *,
    body: str = "",
    heartbeat: bool = False,
    at: datetime.datetime | None = None,
) -> Delivery:
    """A delivery marked as a test (or a heartbeat, which is sent as one), carrying one new event out of the
    stream; `body` fixes the exact bytes it sends, `at` its moment."""
    at = at or timezone.now()
    # One transaction: a test event nothing references is pruned (environments/outbox.py), so it is never
    # seen without its delivery.
    with transaction.atomic():
        event = Event.objects.create(
            environment=webhook.environment, type=event_type, data=data, occurred_at=at, is_test=True
        )
        delivery = Delivery.objects.create(
            webhook=webhook,
            environment=webhook.environment,
            message_id=new_message_id(),
            event_count=1,
            event_types=event_type,
            is_test=True,
            is_heartbeat=heartbeat,
            created_at=at,
            next_attempt_at=None,
            body=body,
        )
        DeliveryEvent.objects.create(delivery=delivery, event=event)
    return delivery


def ask(
    webhook: Webhook,
    kind: str,
    delivery: Delivery,
    *,
    requested_by: str,
    user=None,
    altered: Delivery | None = None,
    challenge: str = "",
    ip: str | None = None,
) -> ManualSend:
    """Record a send for a worker to carry out, queued once the caller's transaction commits.

    `ip` is the address it was asked from: the worker audits the outcome with it."""
    now = timezone.now()
    send = ManualSend.objects.create(
        webhook=webhook,
        kind=kind,
        delivery=delivery,
        altered=altered,
        attempts_before=delivery.attempt_count,
        challenge=challenge,
        requested_by=requested_by[:255],
        requested_by_user=user,
        requested_from=ip,
        requested_at=now,
        enqueued_at=now,
    )
    transaction.on_commit(lambda: queueing.manual_send(send.pk), robust=True)
    return send


def ask_for_verification(webhook: Webhook, *, requested_by: str, user=None, ip: str | None = None) -> ManualSend:
    """Record URL verification: a signed `webhook.verification` event carrying a new random challenge."""
    challenge = secrets.token_urlsafe(24)
    data = {
        "challenge": challenge,
        "instructions": (
            'Answer 2xx with this challenge as the whole response body, or as {"challenge": "<it>"}, '
            "to prove you control this URL."
        ),
    }
    with transaction.atomic():
        delivery = new_test_delivery(webhook, VERIFICATION_EVENT_TYPE, data)
        return ask(
            webhook,
            ManualSend.Kind.VERIFICATION,
            delivery,
            requested_by=requested_by,
            user=user,
            challenge=challenge,
            ip=ip,
        )


def shown(webhook: Webhook, kind: str, send_id: int | None) -> ManualSend | None:
    """The send a page was redirected to show (its id from the query string), if it is this webhook's."""
    if send_id is None:
        return None
    return (
        ManualSend.objects.select_related("attempt", "altered_attempt", "delivery")
        .filter(pk=send_id, webhook=webhook, kind=kind)
        .first()
    )


def latest(webhook: Webhook, kind: str) -> ManualSend | None:
    """The webhook's most recent send of this kind (e.g. the verification under way)."""
    return ManualSend.objects.filter(webhook=webhook, kind=kind).order_by("-id").first()


def wait_for(send: ManualSend, timeout: float) -> ManualSend | None:
    """Poll the row until a worker has finished the send; None if `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        send.refresh_from_db()
        if send.is_finished:
            return send
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def command_wait_seconds(webhook: Webhook) -> float:
    """How long a command waits for a worker: its sends' timeouts, plus time to be picked up."""
    return 2 * (webhook.timeout_seconds + 1) + PICKUP_SECONDS


def requeue_stale(now: datetime.datetime | None = None, limit: int = 100) -> int:
    """Queue again the unfinished sends whose task was lost (a killed worker, a flushed broker). Returns how many."""
    now = now or timezone.now()
    stale = now - datetime.timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    ids = list(
        ManualSend.objects.filter(finished_at__isnull=True, enqueued_at__lt=stale)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .order_by("requested_at")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        ManualSend.objects.filter(pk__in=ids).update(enqueued_at=now)
        for send_id in ids:
            queueing.manual_send(send_id)
    return len(ids)
