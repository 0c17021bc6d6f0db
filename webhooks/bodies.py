"""What a webhook request carries: one event, or `{"events": [...]}` when the webhook batches."""

from __future__ import annotations

import json

from environments.models import event_payload

from . import ledger
from .models import Webhook

THIN_FIELDS = ("id", "data_type", "external_id")


def render(events: list[ledger.EventRow], payload_format: str, max_events_per_request: int) -> str:
    """The request body for these events, as sent (compact JSON, UTF-8)."""
    payloads = []
    for event in events:
        data = event.data
        if payload_format == Webhook.PayloadFormat.THIN:
            data = {key: data[key] for key in THIN_FIELDS if key in data}
        payloads.append(event_payload(event.uid, event.type, event.occurred_at, event.environment_slug, data))
    body = payloads[0] if len(payloads) == 1 and max_events_per_request == 1 else {"events": payloads}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def body_of(delivery_id: int, payload_format: str, max_events_per_request: int) -> str:
    """The body a delivery sends (or sent: once sent, a delivery keeps its body frozen)."""
    events = ledger.events_of([delivery_id])[delivery_id]
    return render(events, payload_format, max_events_per_request)
