"""Records: create, change and delete an environment's data, each with its event in one transaction.

The Data API and the portal both call these functions, so validation, the
external_id rule and the outbox event are the same whichever way data arrives.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.inputs import text_problem

from .events import emit_event
from .models import Environment, Record
from .schema import normalize_record_data, validate_record_changes, validate_record_data


class RecordInvalid(Exception):
    """The data does not fit the published schema; `errors` maps each field to its problem."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{field or 'record'}: {message}" for field, message in errors.items()))


class DuplicateExternalId(Exception):
    """Another record of the same data type already has this external_id."""

    def __init__(self, data_type: str, external_id: str):
        self.data_type = data_type
        self.external_id = external_id
        super().__init__(f'a {data_type} record with external_id "{external_id}" already exists')


def record_representation(record: Record) -> dict[str, Any]:
    """The record as the Data API returns it and as event payloads carry it."""
    return {
        "id": str(record.id),
        "data_type": record.data_type,
        "external_id": record.external_id,
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
        "fields": record.data,
    }


def create_record(environment: Environment, data_type: str, data: Any, *, external_id: str | None = None) -> Record:
    """Validate and store a new record, and emit `<data_type>.created`. A null field is not set."""
    data = normalize_record_data(environment.schema, data_type, data)
    _check(environment, data_type, data, external_id)
    now = timezone.now()
    record = Record(
        environment=environment,
        data_type=data_type,
        external_id=external_id,
        data=data,
        created_at=now,
        updated_at=now,
    )
    with transaction.atomic():
        _save_unique(record)
        emit_event(environment, f"{data_type}.created", record_representation(record), record_id=record.id)
    return record


def update_record(record: Record, changes: Any, *, external_id: Any = ...) -> Record:
    """Merge `changes` into the record (PATCH semantics: null clears a field) and emit `.updated`.

    Only what the PATCH names is validated (`validate_record_changes`): after a
    schema change, a record that fails the new schema in fields the PATCH does
    not touch can still be changed. `external_id` is left alone unless given.
    Nothing is stored or emitted when a change is refused.
    """
    if not isinstance(changes, dict):
        raise RecordInvalid({"": "the changes must be a JSON object of field values"})
    schema = record.environment.schema
    merged = normalize_record_data(schema, record.data_type, {**record.data, **changes})
    new_external_id = record.external_id if external_id is ... else external_id
    errors = validate_record_changes(schema, record.data_type, changes)
    if "" not in errors:
        _check_size_and_external_id(merged, new_external_id, errors)
    if errors:
        raise RecordInvalid(errors)
    changed = sorted(name for name in set(record.data) | set(merged) if record.data.get(name) != merged.get(name))
    if new_external_id != record.external_id:
        changed.append("external_id")
    record.data = merged
    record.external_id = new_external_id
    record.updated_at = timezone.now()
    with transaction.atomic():
        _save_unique(record)
        payload = {**record_representation(record), "changed_fields": changed}
        emit_event(record.environment, f"{record.data_type}.updated", payload, record_id=record.id)
    return record


def delete_record(record: Record) -> None:
    """Delete the record and emit `.deleted` carrying its last state."""
    payload = record_representation(record)
    with transaction.atomic():
        record_id = record.id
        record.delete()
        emit_event(record.environment, f"{record.data_type}.deleted", payload, record_id=record_id)


def _check(environment: Environment, data_type: str, data: Any, external_id: Any) -> None:
    """Raise RecordInvalid unless the complete record fits the schema, the size limit and the external_id rule."""
    errors = validate_record_data(environment.schema, data_type, data)
    if "" not in errors:
        _check_size_and_external_id(data, external_id, errors)
    if errors:
        raise RecordInvalid(errors)


def _check_size_and_external_id(data: dict, external_id: Any, errors: dict[str, str]) -> None:
    if external_id is not None and (not isinstance(external_id, str) or not 0 < len(external_id) <= 255):
        errors["external_id"] = "must be a non-empty string of at most 255 characters"
    elif external_id is not None and (problem := text_problem(external_id)):
        errors["external_id"] = problem
    size = len(json.dumps(data, separators=(",", ":")).encode())
    if size > settings.RECORD_MAX_BYTES:
        errors[""] = f"the record is {size} bytes; at most {settings.RECORD_MAX_BYTES} are allowed"


def _save_unique(record: Record) -> None:
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError as error:
        if "unique_external_id_per_data_type" in str(error) or "UNIQUE constraint" in str(error):
            raise DuplicateExternalId(record.data_type, record.external_id) from None
        raise


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")
