"""The JSON Schema of a published schema's fields: one source for the Data API's OpenAPI document and the
webhooks' event catalog, so a field reads the same in a record and in an event body."""

from __future__ import annotations

from typing import Any

from portal.inputs import MAX_INTEGER, MIN_INTEGER

# A string the server stores: any text without NUL, the one character PostgreSQL refuses.
NO_NUL = "^[^\\x00]*$"

_FORMATS = {"date": "date", "datetime": "date-time", "email": "email"}


def field_schema(spec: dict) -> dict[str, Any]:
    """The JSON Schema of one field of the published schema (see `environments.schema`)."""
    kind = spec["type"]
    schema: dict[str, Any]
    if kind in ("string", "text"):
        schema = {"type": "string", "pattern": NO_NUL}
        if "max_length" in spec:
            schema["maxLength"] = spec["max_length"]
    elif kind == "integer":
        schema = {
            "type": "integer",
            "format": "int64",
            "minimum": spec.get("minimum", MIN_INTEGER),
            "maximum": spec.get("maximum", MAX_INTEGER),
        }
    elif kind == "number":
        schema = {"type": "number", "format": "double"}
        schema.update({bound: spec[bound] for bound in ("minimum", "maximum") if bound in spec})
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "choice":
        schema = {"type": "string", "enum": list(spec["choices"])}
    else:
        schema = {"type": "string", "format": _FORMATS[kind]}
    if spec.get("label"):
        schema["title"] = spec["label"]
    return schema
