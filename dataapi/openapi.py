"""The OpenAPI document of one environment: its published schema's data types and fields, typed.

The global document (`/api/v1/openapi.json`) describes `fields` as any object,
because it serves every environment. This one is generated per environment
and per token from the published schema, so clients generated from it know
each data type's fields, their types, limits and choices, which of them are
required, and only the operations the token's scopes allow. The envelope,
parameters and error responses are taken from the global document, so the two
cannot drift apart.
"""

from __future__ import annotations

import copy
from typing import Any

from environments.json_schema import NO_NUL, field_schema
from environments.models import Environment
from webhooks import event_schemas


def environment_document(base: dict, environment: Environment, scopes: list[str]) -> dict[str, Any]:
    """The document of `environment` for a token holding `scopes`, built on the global document `base`."""
    list_operation = base["paths"]["/api/v1/{environment}/{data_type}/"]["get"]
    errors = {code: body for code, body in list_operation["responses"].items() if not code.startswith("2")}
    query = [parameter for parameter in list_operation["parameters"] if parameter["in"] == "query"]
    security = list_operation["security"]
    schemas = {name: copy.deepcopy(base["components"]["schemas"][name]) for name in ("ErrorOut", "ErrorBody")}
    paths: dict[str, Any] = {}

    for data_type in environment.data_types:
        can_read, can_write = f"{data_type}:read" in scopes, f"{data_type}:write" in scopes
        if not (can_read or can_write):
            continue
        name = "".join(part.capitalize() for part in data_type.split("_"))
        schemas.update(_data_type_schemas(name, data_type, environment.schema["data_types"][data_type]["fields"]))

        def operation(verb: str, summary: str, ok: tuple[str, str | None], body=None, params=(), _type=data_type):
            return _operation(_type, verb, summary, ok, errors, security, body=body, params=params)

        collection, item = {}, {}
        record_id = {
            "in": "path",
            "name": "record_id",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }
        if can_read:
            collection["get"] = operation("list", f"List {data_type}", ("200", f"{name}Page"), params=query)
            item["get"] = operation("read", f"Read a {data_type} record", ("200", f"{name}Record"), params=[record_id])
        if can_write:
            collection["post"] = operation(
                "create", f"Create a {data_type} record", ("201", f"{name}Record"), body=f"{name}Create"
            )
            item["patch"] = operation(
                "update",
                f"Update a {data_type} record",
                ("200", f"{name}Record"),
                body=f"{name}Patch",
                params=[record_id],
            )
            item["delete"] = operation("delete", f"Delete a {data_type} record", ("204", None), params=[record_id])
        paths[f"/api/v1/{environment.slug}/{data_type}/"] = collection
        paths[f"/api/v1/{environment.slug}/{data_type}/{{record_id}}"] = item
    _add_stream_paths(base, environment, scopes, paths, schemas)

    return {
        "openapi": base["openapi"],
        "info": {
            **base["info"],
            "title": f"{base['info']['title']}: {environment.name}",
            "description": f"{base['info']['description']} Generated from the published schema of "
            f"{environment.slug} for the scopes of the token that asked for it.",
        },
        "paths": paths,
        # The event catalog, per webhook and honouring each one's chosen fields.
        "webhooks": event_schemas.openapi_webhooks(environment),
        "jsonSchemaDialect": event_schemas.DIALECT,
        "components": {"schemas": schemas, "securitySchemes": copy.deepcopy(base["components"]["securitySchemes"])},
    }


# The components the events feed and the changes listing refer to, the same in every environment.
_STREAM_SCHEMAS = ("EventPage", "EventOut", "ChangesPage", "ChangeOut", "RecordNow")


def _add_stream_paths(
    base: dict, environment: Environment, scopes: list[str], paths: dict[str, Any], schemas: dict[str, Any]
) -> None:
    """The changes listing of each data type the token reads, and the events feed if it reads any."""
    readable = [name for name in environment.data_types if f"{name}:read" in scopes]
    for data_type in readable:
        paths[f"/api/v1/{environment.slug}/{data_type}/changes"] = {
            "get": _bound(base, "/api/v1/{environment}/{data_type}/changes", f"changes_{data_type}", [data_type])
        }
    if readable:
        paths[f"/api/v1/{environment.slug}/events"] = {"get": _bound(base, "/api/v1/{environment}/events", "events")}
        schemas.update({name: copy.deepcopy(base["components"]["schemas"][name]) for name in _STREAM_SCHEMAS})


def _bound(base: dict, path: str, operation_id: str, tags: list[str] | None = None) -> dict[str, Any]:
    """The global document's GET `path` for this environment: its path parameters filled in, so dropped."""
    operation = copy.deepcopy(base["paths"][path]["get"])
    operation["parameters"] = [parameter for parameter in operation["parameters"] if parameter["in"] != "path"]
    operation["operationId"] = operation_id
    if tags:
        operation["tags"] = tags
    return operation


def _operation(
    data_type: str,
    verb: str,
    summary: str,
    ok: tuple[str, str | None],
    errors: dict,
    security: list,
    *,
    body: str | None = None,
    params=(),
) -> dict[str, Any]:
    status, schema = ok
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    described = {
        "operationId": f"{verb}_{data_type}",
        "summary": summary,
        "tags": [data_type],
        "parameters": copy.deepcopy(list(params)),
        "responses": {
            status: {"description": summary, **({"content": content} if schema else {})},
            **copy.deepcopy(errors),
        },
        "security": security,
    }
    if body:
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    return described


def _data_type_schemas(name: str, data_type: str, fields: dict[str, dict]) -> dict[str, Any]:
    required = sorted(field for field, spec in fields.items() if spec.get("required"))
    typed = {field: field_schema(spec) for field, spec in fields.items()}
    # Null means "not set": it clears a field in a PATCH, and a required field cannot be null.
    nullable = {
        field: schema if field in required else {"anyOf": [schema, {"type": "null"}]} for field, schema in typed.items()
    }
    external_id = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": 255, "pattern": NO_NUL}, {"type": "null"}]}
    return {
        # What a record holds: typed, but a record written before a later version of the schema
        # may lack a field that is now required, or keep one that was since removed.
        f"{name}Fields": {"type": "object", "properties": typed},
        f"{name}FieldsCreate": {
            "type": "object",
            "properties": nullable,
            "required": required,
            "additionalProperties": False,
        },
        f"{name}FieldsPatch": {"type": "object", "properties": nullable, "additionalProperties": False},
        f"{name}Record": {
            "type": "object",
            "required": ["id", "data_type", "external_id", "created_at", "updated_at", "fields"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "data_type": {"type": "string", "enum": [data_type]},
                "external_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "fields": {"$ref": f"#/components/schemas/{name}Fields"},
            },
        },
        f"{name}Page": {
            "type": "object",
            "required": ["data", "next_cursor", "stream_position"],
            "properties": {
                "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}Record"}},
                "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "stream_position": {"type": "string"},
            },
        },
        f"{name}Create": {
            "type": "object",
            "required": ["fields"],
            "properties": {
                "external_id": external_id,
                "fields": {"$ref": f"#/components/schemas/{name}FieldsCreate"},
            },
            "additionalProperties": False,
        },
        f"{name}Patch": {
            "type": "object",
            "properties": {
                "external_id": external_id,
                "fields": {"$ref": f"#/components/schemas/{name}FieldsPatch"},
            },
            "additionalProperties": False,
        },
    }
