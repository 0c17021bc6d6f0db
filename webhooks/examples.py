"""Example payloads per event type, built from the environment's published schema (shown in the portal)."""

from __future__ import annotations

import datetime
import json
import uuid

from environments.models import Environment, event_payload

_EXAMPLE_VALUES = {
    "boolean": True,
    "date": "1990-12-10",
    "datetime": "2026-01-15T09:30:00Z",
    "email": "someone@example.org",
    "integer": 7,
    "number": 7.5,
    "string": "text",
    "text": "A longer text.",
}


EXAMPLE_EVENT_UID = uuid.UUID("5f0c3b2a-9d8e-4f7a-8b6c-1d2e3f4a5b6c")
EXAMPLE_OCCURRED_AT = datetime.datetime(2026, 1, 15, 9, 30, 0, 123456, tzinfo=datetime.UTC)
# Every event a webhook sends carries its number in the webhook's sequence: an example shows one.
EXAMPLE_SEQUENCE = 42


def example_payload(environment: Environment, event_type: str) -> str:
    """The JSON body a webhook receives for one event of this type (one event per request), indented."""
    event = event_payload(
        EXAMPLE_EVENT_UID, event_type, EXAMPLE_OCCURRED_AT, environment.slug, example_data(environment, event_type)
    )
    return json.dumps({**event, "sequence": EXAMPLE_SEQUENCE}, indent=2)


def example_data(environment: Environment, event_type: str) -> dict:
    """The `data` of an example event of this type: every field of its data type with a sample value."""
    data_type, _, action = event_type.partition(".")
    fields = environment.schema.get("data_types", {}).get(data_type, {}).get("fields", {})
    values = {
        name: (spec.get("choices") or ["?"])[0]
        if spec.get("type") == "choice"
        else _EXAMPLE_VALUES.get(spec.get("type"))
        for name, spec in fields.items()
    }
    data: dict = {
        "id": "0b6f1c9e-5d1a-4c53-9a39-6a3f5e2f1d10",
        "data_type": data_type,
        "external_id": "ext-123",
        "created_at": "2026-01-15T09:30:00Z",
        "updated_at": "2026-01-15T09:30:00Z",
        "fields": values,
    }
    if action == "updated":
        data["changed_fields"] = sorted(values)[:1]
    return data
