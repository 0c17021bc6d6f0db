"""The event outbox: facts about changes, written in the change's own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db import transaction

from .models import Environment, Event


def emit_event(environment: Environment, event_type: str, data: dict, *, record_id: uuid.UUID | None = None) -> Event:
    """Write an Event row as part of the caller's open transaction.

    Refuses to run outside a transaction: an event written apart from its
    change could survive a rolled-back change, or be lost after a committed one.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("emit_event() must run inside the transaction that makes the change")
    event = Event.objects.create(environment=environment, type=event_type, data=data, record_id=record_id)
    for listener in _listeners:
        listener(event)
    return event


# Called with each new event inside its transaction; the webhooks app registers
# its fan-out here, so that deliveries are written atomically with the change
# without this app depending on that one.
_listeners: list[Callable[[Event], None]] = []


def register_event_listener(listener: Callable[[Event], None]) -> None:
    """Call `listener(event)` for every emitted event, inside the emitting transaction."""
    if listener not in _listeners:
        _listeners.append(listener)
