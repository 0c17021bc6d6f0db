"""Heartbeats: a webhook that asks for them is told, when nothing was sent to it for a while, that all is quiet.

With `heartbeat_minutes` N set, a webhook to which no request of any kind was sent for N minutes gets a
signed `webhook.heartbeat` event whose data carries `last_sequence`, the highest number of the webhook's
sequence that was sent. A receiver that hears nothing for longer than N minutes (and a margin) knows
something is broken, not quiet; one whose last number is below `last_sequence` knows it missed events and
fetches them (`/api/v1/<environment>/webhooks/<id>/events?after=<n>`).

The clock is `Webhook.last_triggered_at`, which every recorded attempt moves (to the second, see
`ledger.record`): a real send resets it, so heartbeats stop while events flow, and a heartbeat resets it
too. A heartbeat is sent as a test is (`is_test`, with `is_heartbeat`): outside lines, never retried, and
saying nothing of the receiver's health; its event is marked as a test, so it is in no stream either.

The periodic task (`tasks.send_heartbeats`, every WEBHOOK_HEARTBEAT_SCAN_SECONDS) calls `scan`; each
heartbeat is then sent by a task of its own (`send`).
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import numbering
from .delivery import queueing, sending
from .delivery.bodies import HEARTBEAT_EVENT_TYPE
from .manual_sends import new_test_delivery
from .models import Attempt, Delivery, Webhook

SEND_TASK = "webhooks.heartbeat"
# A heartbeat no worker took up within this long (its task lost, or every slot busy: then events flow) is
# discarded, and the next scan sends another if the webhook is still quiet.
UNSENT_AFTER = datetime.timedelta(minutes=1)


def quiet_webhooks(now: datetime.datetime) -> list[Webhook]:
    """Active webhooks with heartbeats on, nothing sent for their heartbeat's minutes, and no heartbeat waiting."""
    waiting = Delivery.objects.filter(is_heartbeat=True, status__in=Delivery.WAITING).values("webhook_id")
    candidates = (
        Webhook.objects.filter(state=Webhook.State.ACTIVE, heartbeat_minutes__isnull=False)
        .exclude(pk__in=waiting)
        .select_related("environment")
    )
    quiet = []
    for webhook in candidates:
        last = webhook.last_triggered_at or webhook.created_at
        if now - last >= datetime.timedelta(minutes=webhook.heartbeat_minutes or 0):
            quiet.append(webhook)
    return quiet


def new_heartbeat(webhook: Webhook, now: datetime.datetime) -> Delivery:
    """A heartbeat delivery of this webhook, carrying one new `webhook.heartbeat` event; queued on commit."""
    data = {"last_sequence": numbering.last_sent(webhook.pk), "heartbeat_minutes": webhook.heartbeat_minutes}
    with transaction.atomic():
        delivery = new_test_delivery(webhook, HEARTBEAT_EVENT_TYPE, data, heartbeat=True, at=now)
        transaction.on_commit(lambda: queueing.queue(SEND_TASK, delivery.pk), robust=True)
    return delivery


def discard_unsent(now: datetime.datetime) -> int:
    """Heartbeats still waiting after UNSENT_AFTER and nobody sending them (never taken up, or their worker
    stopped mid-send): discarded. A heartbeat is never sent late: the next scan writes a new one."""
    return (
        Delivery.objects.filter(is_heartbeat=True, status__in=Delivery.WAITING, created_at__lt=now - UNSENT_AFTER)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .update(status=Delivery.Status.DISCARDED)
    )


def scan(now: datetime.datetime | None = None) -> int:
    """One round of the beat: discard heartbeats left unsent, then write and queue one per quiet webhook."""
    now = now or timezone.now()
    discard_unsent(now)
    quiet = quiet_webhooks(now)
    for webhook in quiet:
        new_heartbeat(webhook, now)
    return len(quiet)


def send(delivery_id: int) -> Attempt | None:
    """Send a heartbeat once, now, if it still waits and its webhook is active (in a worker: a slow answer is
    recorded when it comes)."""
    return sending.send_now(
        delivery_id, trigger=Attempt.Trigger.HEARTBEAT, while_status=(Delivery.Status.PENDING,), may_park=True
    )
