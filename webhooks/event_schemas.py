"""The event catalog: a JSON Schema (draft 2020-12) of every event an environment's webhooks send.

Generated from the published schema, and shaped by `bodies.shaped_data`, the very step that shapes
real bodies (thin format, chosen fields): the data of an event is described as a dict of JSON
Schemas in place of values, passed through that step, then turned into an object schema. The
catalog's version is the number of the published schema version, so it moves with each publish,
and what a publish changes in it is the publish diff (`environments.schema_diff`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from environments.json_schema import field_schema
from environments.models import Environment

from . import examples
from .delivery import bodies
from .manual import TEST_EVENT_TYPE
from .manual_sends import VERIFICATION_EVENT_TYPE
from .models import Webhook

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_TIMESTAMP = {"type": "string", "format": "date-time"}
_STRING = {"type": "string"}
# Events of the webhook itself, not of a record: what each carries (see manual.py, manual_sends.py, heartbeats.py).
_SYSTEM_DATA: dict[str, dict[str, Any]] = {
    TEST_EVENT_TYPE: {"webhook": _STRING, "message": _STRING},
    VERIFICATION_EVENT_TYPE: {"challenge": _STRING, "instructions": _STRING},
    bodies.HEARTBEAT_EVENT_TYPE: {
        "last_sequence": {"type": "integer", "minimum": 0},
        "heartbeat_minutes": {"type": "integer", "minimum": 1},
    },
}


class _AllFields:
    """The shape of a webhook that takes everything: the catalog's default."""

    payload_format = Webhook.PayloadFormat.FULL
    max_events_per_request = 1
    payload_fields: dict[str, list[str]] = {}


@dataclass(frozen=True)
class CatalogEntry:
    """One event type: its JSON Schema and the example body the portal shows beside it."""

    event_type: str
    schema: dict[str, Any]
    example: str


def catalog_version(environment: Environment) -> int:
    """The catalog's version: the published schema version's number (0 before the first publish)."""
    return environment.published_version.number if environment.published_version else 0


def event_types(environment: Environment) -> list[str]:
    """Every event type the environment's webhooks can receive: its records' and the webhooks' own."""
    return [*environment.event_types, *_SYSTEM_DATA]


def event_schema(environment: Environment, event_type: str, shape: bodies.Shape | None = None) -> dict[str, Any]:
    """The JSON Schema of one event of `event_type` as a webhook of `shape` receives it (all fields if None)."""
    shape = shape or _AllFields()
    data = bodies.shaped_data(event_type, _data_schemas(environment, event_type), shape)
    return {
        "$schema": DIALECT,
        "title": event_type,
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^evt_[0-9a-f]{32}$"},
            "type": {"const": event_type},
            "timestamp": _TIMESTAMP,
            "environment": {"const": environment.slug},
            "data": _object(data, chosen=event_type.partition(".")[0] in shape.payload_fields),
            "sequence": {"type": "integer", "minimum": 1},
        },
        "required": ["id", "type", "timestamp", "environment", "data"],
        "additionalProperties": False,
    }


def catalog(environment: Environment) -> list[CatalogEntry]:
    """Every event type of the environment with its schema and its example body."""
    return [
        CatalogEntry(name, event_schema(environment, name), examples.example_payload(environment, name))
        for name in event_types(environment)
    ]


def body_schema(webhook: Webhook) -> dict[str, Any]:
    """The JSON Schema of a request body this webhook receives: one event, or `{"events": [...]}` when it batches.

    Without `$schema`: it is meant to sit inside a document (OpenAPI 3.1 `webhooks`) that names the dialect.
    """
    names = [*webhook.event_types, *_SYSTEM_DATA]
    one_event = {"oneOf": [_without_dialect(event_schema(webhook.environment, name, webhook)) for name in names]}
    if webhook.max_events_per_request == 1:
        return one_event
    batch = {
        "type": "object",
        "properties": {"events": {"type": "array", "minItems": 1, "items": one_event}},
        "required": ["events"],
        "additionalProperties": False,
    }
    # A test, a verification and a heartbeat go alone, whatever the batch size.
    return {"oneOf": [batch, *one_event["oneOf"][len(webhook.event_types) :]]}


def openapi_webhooks(environment: Environment) -> dict[str, Any]:
    """OpenAPI 3.1 `webhooks`: per webhook of the environment, the request it receives, with its chosen fields."""
    described = {}
    for webhook in Webhook.objects.filter(environment=environment).order_by("name"):
        described[webhook.name] = {
            "post": {
                "operationId": f"webhook_{webhook.pk}",
                "summary": f"What {webhook.name} receives (event catalog version {catalog_version(environment)})",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body_schema(webhook)}},
                },
                "responses": {"2XX": {"description": "Received; any other answer is retried."}},
            }
        }
    return described


def _without_dialect(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "$schema"}


def _data_schemas(environment: Environment, event_type: str) -> dict[str, Any]:
    """The event's data with a JSON Schema in place of each value; `data_type` keeps its name for the shaping."""
    if event_type in _SYSTEM_DATA:
        return dict(_SYSTEM_DATA[event_type])
    data_type, _, action = event_type.partition(".")
    fields = environment.schema.get("data_types", {}).get(data_type, {}).get("fields", {})
    data: dict[str, Any] = {
        "id": {"type": "string", "format": "uuid"},
        "data_type": data_type,
        "external_id": {"type": ["string", "null"]},
        "created_at": _TIMESTAMP,
        "updated_at": _TIMESTAMP,
        "fields": {name: field_schema(spec) for name, spec in fields.items()},
    }
    if action == "updated":
        data["changed_fields"] = {"type": "array", "items": _STRING}
    return data


def _object(data: dict[str, Any], *, chosen: bool) -> dict[str, Any]:
    """An object schema from a dict of schemas, each key present required; `chosen`: the webhook receives only
    the fields it chose of this data type, so no other can appear."""
    properties: dict[str, Any] = {}
    for key, value in data.items():
        if key == "data_type" and isinstance(value, str):
            properties[key] = {"const": value}
        elif key == "fields" and isinstance(value, dict):
            # Typed, but as the Data API's `<Type>Fields`: a record written under an earlier version of the
            # schema may lack a field now required, or keep one since removed.
            properties[key] = {"type": "object", "properties": value}
            if chosen:
                properties[key]["additionalProperties"] = False
        else:
            properties[key] = value
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
