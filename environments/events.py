"""The event outbox: facts about changes, written in the change's own transaction."""

from __future__ import annotations

import uuid

from django.db import transaction

from .models import Environment, Event


def emit_event(environment: Environment, event_type: str, data: dict, *, record_id: uuid.UUID | None = None) -> Event:
    """Write an Event row as part of the caller's open transaction.

    Refuses to run outside a transaction: an event written apart from its
    change could survive a rolled-back change, or be lost after a committed one.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("emit_event() must run inside the transaction that makes the change")
    return Event.objects.create(environment=environment, type=event_type, data=data, record_id=record_id)
