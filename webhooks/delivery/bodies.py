"""What a webhook request carries: one event, or `{"events": [...]}` when the webhook batches.

Every event of a real change carries `"sequence"`, its number in the webhook's sequence (see `fanout.py`),
whichever path renders it: the fan-out, a worker (`render` from `ledger.events_of`), a re-send, or the
webhook's events endpoint (`payload`, in `dataapi/webhook_events.py`).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from environments.models import Event, event_payload

from .. import examples
from ..models import Webhook
from . import ledger

THIN_FIELDS = ("id", "data_type", "external_id")
# A heartbeat's event (webhooks/heartbeats.py): no record's data, so neither thin nor trimmed.
HEARTBEAT_EVENT_TYPE = "webhook.heartbeat"


class Shape(Protocol):
    """What decides a body's shape: a webhook, or the sending path's copy of its options (`ledger.Target`)."""

    payload_format: str
    max_events_per_request: int
    payload_fields: dict[str, list[str]]


def render(events: list[ledger.EventRow], shape: Shape) -> str:
    """The request body for these events, as sent (compact JSON, UTF-8).

    The record data's keys go in sorted order, so the body is the same bytes
    whether it is built from an event just written (the fan-out) or one read
    back from the database (whose JSON type keeps keys in an order of its own).
    """
    payloads = [payload(event, shape) for event in events]
    body = payloads[0] if len(payloads) == 1 and shape.max_events_per_request == 1 else {"events": payloads}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def payload(event: ledger.EventRow, shape: Shape) -> dict:
    """One event as this webhook's bodies carry it: its format, its chosen fields, and its number."""
    data = shaped_data(event.type, _sorted_keys(event.data), shape)
    shaped = event_payload(event.uid, event.type, event.occurred_at, event.environment_slug, data)
    if event.sequence is not None:
        shaped["sequence"] = event.sequence
    return shaped


def shaped_data(event_type: str, data: Any, shape: Shape) -> Any:
    """An event's data as this webhook receives it: thin, or trimmed to its chosen fields.

    The event catalog (`webhooks.event_schemas`) passes a data whose values are JSON Schemas through
    this same step, so the schema of a body cannot drift from the body.
    """
    if event_type == HEARTBEAT_EVENT_TYPE:
        return data
    if shape.payload_format == Webhook.PayloadFormat.THIN:
        return {key: data[key] for key in THIN_FIELDS if key in data}
    return minimum_necessary(data, shape.payload_fields)


def numbered_payload(event: Event, sequence: int, shape: Shape) -> dict:
    """An event as this webhook's bodies carry it, with its number (its events endpoint; `event.environment`
    should be loaded with it)."""
    return payload(event_row(event, sequence), shape)


def event_row(event: Event, sequence: int | None = None) -> ledger.EventRow:
    """What a body is built from, taken from an event in hand rather than read back."""
    return ledger.EventRow(event.uid, event.type, event.occurred_at, event.environment.slug, event.data, sequence)


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(item) for item in value]
    return value


def minimum_necessary(data: dict, payload_fields: dict[str, list[str]]) -> dict:
    """The record data with only the chosen fields of its data type (all of them when none were chosen)."""
    if not isinstance(data, dict):
        return data
    data_type: Any = data.get("data_type")  # the record's, whatever it holds
    chosen = payload_fields.get(data_type)
    if chosen is None:
        return data
    allowed = set(chosen)
    trimmed = dict(data)
    if isinstance(data.get("fields"), dict):
        trimmed["fields"] = {name: value for name, value in data["fields"].items() if name in allowed}
    if isinstance(data.get("changed_fields"), list):
        # Which fields changed tells something too: only the chosen ones are named.
        trimmed["changed_fields"] = [name for name in data["changed_fields"] if name in allowed]
    return trimmed


def body_of(delivery_id: int, shape: Shape) -> str:
    """The body a delivery sends (or sent: once sent, a delivery keeps its body frozen)."""
    events = ledger.events_of([delivery_id])[delivery_id]
    return render(events, shape)


def preview(webhook: Webhook, event_type: str) -> str:
    """The exact body one event of this type sends to this webhook, built from its example record."""
    environment = webhook.environment
    event = ledger.EventRow(
        uid=examples.EXAMPLE_EVENT_UID,
        type=event_type,
        occurred_at=examples.EXAMPLE_OCCURRED_AT,
        environment_slug=environment.slug,
        data=examples.example_data(environment, event_type),
        sequence=examples.EXAMPLE_SEQUENCE,
    )
    return render([event], webhook)
