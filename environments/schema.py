"""The configuration schema: its document format, its validation, and record validation against it.

A schema document is JSON::

    {"data_types": {
        "patients": {"label": "Patients", "fields": {
            "first_name": {"type": "string", "required": true, "max_length": 100},
            "status": {"type": "choice", "choices": ["active", "discharged"]}}},
        "workers": {"fields": {...}},
        "assessments": {"fields": {...}}}}

`patients` and `workers` are built in and must be present; other data types are custom.
Errors name the data type, the field and what is wrong, so a user can fix the file
without guessing.
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from portal.inputs import MAX_INTEGER, MIN_INTEGER, text_problem

BUILT_IN_DATA_TYPES = ("patients", "workers")
FIELD_TYPES = ("boolean", "choice", "date", "datetime", "email", "integer", "number", "string", "text")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_DATA_TYPES = 100
MAX_FIELDS = 200

_DATA_TYPE_KEYS = {"label", "fields"}
_FIELD_KEYS = {"type", "label", "required", "max_length", "choices", "minimum", "maximum"}


@dataclass(frozen=True)
class SchemaProblem:
    """One thing wrong with a schema document, located precisely."""

    data_type: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.data_type is not None:
            where.append(f'data type "{self.data_type}"')
        if self.field is not None:
            where.append(f'field "{self.field}"')
        return f"{', '.join(where)}: {self.message}" if where else self.message


class SchemaInvalid(Exception):
    """A schema document that cannot be published; `problems` lists every issue found."""

    def __init__(self, problems: list[SchemaProblem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def validate_schema(document: Any) -> None:
    """Raise `SchemaInvalid` listing every problem in `document`, or return if it is valid."""
    problems = publish_problems(document)
    if problems:
        raise SchemaInvalid(problems)


def publish_problems(document: Any) -> list[SchemaProblem]:
    """Every problem that would stop `document` from being published; empty when it can be."""
    return list(_schema_problems(document))


def _schema_problems(document: Any):
    if not isinstance(document, dict):
        yield SchemaProblem(None, None, 'the schema must be a JSON object with a "data_types" key')
        return
    unknown = set(document) - {"data_types"}
    if unknown:
        yield SchemaProblem(None, None, f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    data_types = document.get("data_types")
    if not isinstance(data_types, dict):
        yield SchemaProblem(None, None, '"data_types" must be an object mapping data type names to definitions')
        return
    for name in BUILT_IN_DATA_TYPES:
        if name not in data_types:
            yield SchemaProblem(name, None, "the built-in data type is missing")
    if len(data_types) > MAX_DATA_TYPES:
        yield SchemaProblem(None, None, f"at most {MAX_DATA_TYPES} data types are allowed")
    for name, definition in data_types.items():
        yield from _data_type_problems(name, definition)


# Names the Data API needs for its own paths under /api/v1/<environment>/ (the events feed, the webhooks'
# numbered events, the OpenAPI document): no data type can take them.
RESERVED_DATA_TYPE_NAMES = frozenset({"events", "webhooks", "openapi", "changes", "stream", "status"})


def _data_type_problems(name: str, definition: Any):
    if not NAME_PATTERN.match(name):
        yield SchemaProblem(
            name, None, "the name must start with a lowercase letter and use only a-z, 0-9 and _ (63 at most)"
        )
    elif name in RESERVED_DATA_TYPE_NAMES:
        yield SchemaProblem(
            name, None, f"“{name}” is reserved for the Data API's own paths; choose another name for this data type"
        )
    if not isinstance(definition, dict):
        yield SchemaProblem(name, None, 'the definition must be an object with a "fields" key')
        return
    unknown = set(definition) - _DATA_TYPE_KEYS
    if unknown:
        yield SchemaProblem(name, None, f"unknown key(s): {', '.join(sorted(unknown))}")
    if "label" in definition and not isinstance(definition["label"], str):
        yield SchemaProblem(name, None, '"label" must be a string')
    fields = definition.get("fields")
    if not isinstance(fields, dict) or not fields:
        yield SchemaProblem(name, None, '"fields" must be a non-empty object')
        return
    if len(fields) > MAX_FIELDS:
        yield SchemaProblem(name, None, f"at most {MAX_FIELDS} fields are allowed")
    for field_name, spec in fields.items():
        yield from _field_problems(name, field_name, spec)


def _field_problems(data_type: str, name: str, spec: Any):
    def problem(message: str) -> SchemaProblem:
        return SchemaProblem(data_type, name, message)

    if not NAME_PATTERN.match(name):
        yield problem("the name must start with a lowercase letter and use only a-z, 0-9 and _ (63 at most)")
    if not isinstance(spec, dict):
        yield problem('the definition must be an object with a "type" key')
        return
    unknown = set(spec) - _FIELD_KEYS
    if unknown:
        yield problem(f"unknown key(s): {', '.join(sorted(unknown))}")
    field_type = spec.get("type")
    if field_type not in FIELD_TYPES:
        yield problem(f"unknown type {_show(field_type)}; expected one of {', '.join(FIELD_TYPES)}")
        return
    if "required" in spec and not isinstance(spec["required"], bool):
        yield problem('"required" must be true or false')
    if "label" in spec and not isinstance(spec["label"], str):
        yield problem('"label" must be a string')
    if "max_length" in spec:
        if field_type not in ("string", "text"):
            yield problem('"max_length" applies only to string and text fields')
        elif not _is_int(spec["max_length"]) or spec["max_length"] < 1:
            yield problem('"max_length" must be a positive integer')
    for bound in ("minimum", "maximum"):
        if bound in spec:
            if field_type not in ("integer", "number"):
                yield problem(f'"{bound}" applies only to integer and number fields')
            elif not _is_number(spec[bound]):
                yield problem(f'"{bound}" must be a number')
    if field_type == "choice":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            yield problem('a choice field needs "choices": a non-empty list of strings')
        elif len(set(choices)) != len(choices):
            yield problem('"choices" has duplicates')
    elif "choices" in spec:
        yield problem('"choices" applies only to choice fields')


# --- Records ------------------------------------------------------------------


def validate_record_data(schema: dict, data_type: str, data: Any) -> dict[str, str]:
    """Check `data` against the data type's fields; return {field: message} for every problem.

    The key "" holds problems that belong to no single field.
    """
    definition = schema.get("data_types", {}).get(data_type)
    if definition is None:
        return {"": f'unknown data type "{data_type}"'}
    if not isinstance(data, dict):
        return {"": "the record must be a JSON object of field values"}
    fields = definition["fields"]
    errors = _unknown_fields(fields, data)
    for name, spec in fields.items():
        if data.get(name) is None:
            if spec.get("required"):
                errors[name] = "this field is required"
            continue
        message = _value_problem(spec, data[name])
        if message:
            errors[name] = message
    return errors


def validate_record_changes(schema: dict, data_type: str, changes: dict) -> dict[str, str]:
    """Check a PATCH's `changes` (null clears a field) field by field; return {field: message}.

    Only the fields the PATCH names are judged: a value it sends is checked in
    full, a field it clears (null) only for being required. Fields it leaves
    alone are not judged, so a record that an older schema let in, and a newer
    one would refuse, can still be changed one field at a time.
    Clearing a field the schema no longer has is allowed: it removes stale data.
    """
    definition = schema.get("data_types", {}).get(data_type)
    if definition is None:
        return {"": f'unknown data type "{data_type}"'}
    fields = definition["fields"]
    # Normalised, a null is absent: what is left are the values the PATCH sets.
    sent = normalize_record_data(schema, data_type, changes)
    errors = _unknown_fields(fields, sent)
    for name, spec in fields.items():
        if name in sent:
            message = _value_problem(spec, sent[name])
            if message:
                errors[name] = message
    for name, value in changes.items():
        if value is None and fields.get(name, {}).get("required"):
            errors[name] = "this field is required"
    return errors


def _unknown_fields(fields: dict, data: dict) -> dict[str, str]:
    return {name: "unknown field" for name in data if name not in fields}


def normalize_record_data(schema: dict, data_type: str, data: Any) -> Any:
    """`data` as stored: null means "not set" (so it is dropped), and 3.0 in an integer field is 3.

    JSON has one number type: JSON Schema counts 3.0 as an integer, and so do we.
    Anything else is left for `validate_record_data` to judge.
    """
    fields = schema.get("data_types", {}).get(data_type, {}).get("fields", {})
    if not isinstance(data, dict):
        return data
    normalized = {}
    for name, value in data.items():
        if value is None:
            continue
        if fields.get(name, {}).get("type") == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)
        normalized[name] = value
    return normalized


def _value_problem(spec: dict, value: Any) -> str | None:
    field_type = spec["type"]
    if field_type in ("string", "text"):
        if not isinstance(value, str):
            return "must be a string"
        if problem := text_problem(value):
            return problem
        limit = spec.get("max_length")
        if limit and len(value) > limit:
            return f"must be at most {limit} characters (got {len(value)})"
    elif field_type == "integer":
        if not _is_int(value):
            return "must be an integer"
        if not MIN_INTEGER <= value <= MAX_INTEGER:
            return "must fit in 64 bits"
        return _bounds_problem(spec, value)
    elif field_type == "number":
        if not _is_number(value):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if isinstance(value, int) and not MIN_INTEGER <= value <= MAX_INTEGER:
            return "must fit in 64 bits"
        return _bounds_problem(spec, value)
    elif field_type == "boolean":
        if not isinstance(value, bool):
            return "must be true or false"
    elif field_type == "date":
        if not isinstance(value, str) or not _parses(datetime.date.fromisoformat, value):
            return "must be a date as YYYY-MM-DD"
    elif field_type == "datetime":
        if not isinstance(value, str) or not _parses(datetime.datetime.fromisoformat, value):
            return "must be an ISO 8601 date and time"
    elif field_type == "email":
        if not isinstance(value, str):
            return "must be an email address"
        try:
            validate_email(value)
        except ValidationError:
            return "must be an email address"
    elif field_type == "choice" and value not in spec["choices"]:
        return f"must be one of {', '.join(spec['choices'])}"
    return None


def _bounds_problem(spec: dict, value: float) -> str | None:
    if "minimum" in spec and value < spec["minimum"]:
        return f"must be at least {spec['minimum']}"
    if "maximum" in spec and value > spec["maximum"]:
        return f"must be at most {spec['maximum']}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parses(parse, value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else "missing" if value is None else repr(value)
