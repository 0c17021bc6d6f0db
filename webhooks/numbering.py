"""A webhook's numbered events, read back: by number for the client it serves, and how far they have got.

Each webhook numbers the events it sends, contiguously from 1, in commit order
(given at fan-out: `delivery/fanout.py`). A receiver that has 41 and then gets
43 knows 42 is missing, and reads it here, through the Data API
(`dataapi/webhook_events.py`), shaped as the webhook's bodies are. The numbers
a page returns are always a run without a gap: numbers are given in commit
order, so every number up to the last one given is visible once it is, unless
retention pruned its delivery (or erased its payload). Then the caller is told
the numbers are gone (`Gone`), and resyncs from the Data API's lists.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db.models import F

from .delivery import bodies
from .models import Delivery, DeliveryEvent, Webhook, WebhookSequence


class Gone(Exception):
    """The events from number `first_missing` on are no longer kept (pruned, or their payload erased)."""

    def __init__(self, first_missing: int):
        self.first_missing = first_missing
        super().__init__(f"event {first_missing} of this webhook is no longer kept")


@dataclass
class Page:
    events: list[dict[str, Any]]
    next_cursor: int  # the last number returned (the `after` asked for when none was)


def last_given(webhook_id: int) -> int:
    """The last number the webhook gave an event (0 before its first)."""
    return WebhookSequence.objects.filter(pk=webhook_id).values_list("last", flat=True).first() or 0


def _highest(webhook_id: int, **delivery: Any) -> int:
    numbered = DeliveryEvent.objects.filter(webhook_id=webhook_id, sequence__isnull=False)
    found = numbered.filter(**delivery).order_by("-sequence").values_list("sequence", flat=True).first()
    return found or 0


def last_delivered(webhook_id: int) -> int:
    """The highest number whose delivery succeeded (0 for none)."""
    return _highest(webhook_id, delivery__status=Delivery.Status.SUCCEEDED)


def last_sent(webhook_id: int) -> int:
    """The highest number whose delivery was sent at least once (0 for none): what a heartbeat carries."""
    return _highest(webhook_id, delivery__attempt_count__gt=0)


def progress(webhook_id: int) -> dict[str, int]:
    """What the webhook's page shows: the last number delivered and the last given."""
    return {"last_delivered": last_delivered(webhook_id), "last_given": last_given(webhook_id)}


def events_after(webhook: Webhook, after: int, limit: int) -> Page:
    """The webhook's events numbered after `after`, at most `limit`, in order, shaped as its bodies are
    (format, chosen fields, `"sequence"`). Raises `Gone` when the next number is no longer kept."""
    rows = list(
        DeliveryEvent.objects.filter(webhook=webhook, sequence__gt=after)
        .select_related("event__environment")
        .annotate(erased_at=F("delivery__payload_erased_at"))
        .order_by("sequence")[:limit]
    )
    run: list[DeliveryEvent] = []
    for row in rows:
        if row.sequence != after + len(run) + 1 or row.erased_at is not None:  # type: ignore[attr-defined]
            break
        run.append(row)
    if not run and (rows or last_given(webhook.pk) > after):
        raise Gone(after + 1)
    events = [bodies.numbered_payload(row.event, row.sequence or 0, webhook) for row in run]
    return Page(events, (run[-1].sequence or after) if run else after)


def _moment(value: datetime.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def status(webhook: Webhook) -> dict[str, Any]:
    """Where the webhook's numbered events stand (FHIR's `$status`): its state, whether it is failing, the last
    number given and delivered, its next retry and its heartbeat."""
    next_retry = (
        Delivery.objects.filter(webhook=webhook, status=Delivery.Status.RETRYING, is_test=False)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return {
        "webhook": webhook.pk,
        "state": webhook.state,
        "condition": webhook.condition,
        "failing_since": _moment(webhook.failing_since),
        "last_sequence": last_given(webhook.pk),
        "last_sequence_delivered": last_delivered(webhook.pk),
        "next_retry_at": _moment(next_retry),
        "heartbeat_minutes": webhook.heartbeat_minutes,
        "last_sent_at": _moment(webhook.last_triggered_at),
    }
