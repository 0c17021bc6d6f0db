"""The event outbox: facts about changes, written in the change's own transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from portal.bindings import named_functions

from .models import Environment, Event


def emit_event(environment: Environment, event_type: str, data: dict, *, record_id: uuid.UUID | None = None) -> Event:
    """Write an Event row as part of the caller's open transaction.

    Refuses to run outside a transaction: an event written apart from its
    change could survive a rolled-back change, or be lost after a committed one.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("emit_event() must run inside the transaction that makes the change")
    event = Event.objects.create(environment=environment, type=event_type, data=data, record_id=record_id)
    for listener in event_listeners():
        listener(event)
    return event


def event_listeners() -> tuple[Callable[[Event], None], ...]:
    """The functions called with each new event inside its transaction, as named in `settings.EVENT_LISTENERS`.

    The webhooks app's fan-out is named there (not imported here), so that
    deliveries are written atomically with the change without this app
    depending on that one, and a reader can follow an event to its fan-out.
    """
    return named_functions(settings.EVENT_LISTENERS)
