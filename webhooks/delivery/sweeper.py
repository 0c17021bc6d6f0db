"""The sweeper (on beat, every WEBHOOK_SWEEP_SECONDS): what the queue lost is found again in the database.

- Attempts under way when their worker stopped (a mark with no lease left) are
  recorded, outcome unknown (`ledger.record_interrupted`).
- Due deliveries whose task was lost (a killed worker, a flushed Redis, a crash
  between commit and enqueue) are queued again, as drain tasks per webhook.
- A failing webhook is probed now and then (`retry_policy.probe_interval`): its
  oldest waiting delivery is sent early, so its return is noticed in seconds.

The periodic task (`webhooks/tasks.py`) runs this round, then the features' own
sweeps (bulk re-sends whose worker died, sends asked for by hand whose task was
lost): the engine knows nothing of them.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import cast

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from ..models import Delivery, Webhook
from . import ledger, queueing, retry_policy, sending


def sweep(now: datetime.datetime | None = None, limit: int = 1000) -> int:
    """Queue the due deliveries that are not in flight and whose last enqueue is stale. Returns how many."""
    now = now or timezone.now()
    stale = now - datetime.timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    due = list(
        Delivery.objects.due(now)
        .lease_free(now)
        .filter(webhook__state=Webhook.State.ACTIVE)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        # Held in its line, a delivery is sent after the one ahead of it, not by a task of its own.
        .claimable_in_line(now)
        .order_by("next_attempt_at", "id")
        .values_list("pk", "webhook_id", "webhook__max_in_flight")[:limit]
    )
    if due:
        Delivery.objects.filter(pk__in=[pk for pk, _, _ in due]).update(enqueued_at=now)
        caps = {webhook_id: cap for _, webhook_id, cap in due}
        for webhook_id, count in Counter(webhook_id for _, webhook_id, _ in due).items():
            queueing.drain(webhook_id, copies=min(count, caps[webhook_id]))
    return len(due)


def webhooks_to_probe(now: datetime.datetime) -> list[int]:
    """Active failing webhooks with deliveries waiting whose last attempt is a probe interval old."""
    failing = (
        Webhook.objects.filter(state=Webhook.State.ACTIVE, failing_since__isnull=False)
        .annotate(
            waiting=Count("deliveries", filter=Q(deliveries__status__in=Delivery.WAITING, deliveries__is_test=False))
        )
        .filter(waiting__gt=0)
    )
    chosen = []
    for webhook in failing:
        failing_since = cast(datetime.datetime, webhook.failing_since)  # the query keeps failing webhooks only
        last = webhook.last_triggered_at or failing_since
        interval = retry_policy.probe_interval(now - failing_since)
        if (now - last).total_seconds() >= interval:
            chosen.append(webhook.pk)
    return chosen


def probe_target(webhook_id: int) -> int | None:
    """The delivery a probe sends: the webhook's oldest waiting one."""
    return (
        Delivery.objects.filter(webhook_id=webhook_id, status__in=Delivery.WAITING, is_test=False)
        .order_by("id")
        .values_list("pk", flat=True)
        .first()
    )


def run(now: datetime.datetime | None = None) -> None:
    """One round of the engine's sweeper: record the attempts of workers that stopped mid-send, queue lost due
    deliveries, then probes of failing webhooks."""
    now = now or timezone.now()
    ledger.record_interrupted(now)
    sweep(now)
    for webhook_id in webhooks_to_probe(now):
        queueing.queue(queueing.PROBE, webhook_id)


def probe(webhook_id: int) -> None:
    """Send a failing webhook's oldest waiting delivery now; if it gets through, drain the rest."""
    delivery_id = probe_target(webhook_id)
    if delivery_id is None:
        return
    # Only while it still waits: a drain may have delivered it since it was picked, and must not be repeated.
    sent = sending.probe(delivery_id)
    if sent is not None and not sent.parked and sent.attempts and sent.attempts[-1].succeeded:
        sending.drain(webhook_id)
