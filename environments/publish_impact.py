"""What publishing a schema would do to the records environments already hold.

A publish that makes a field required, changes its type, removes a choice,
lowers a limit, drops a field or a data type leaves records written under the
old schema failing the new one. `records_left_invalid` counts them, per
environment and data type, with the fields at fault, so the portal and the
`publish_configuration` command can say so before anything is published.

It counts what *this* publish breaks: each environment's schema is compared
with the one it runs now, and only fields whose definition changes are
judged. A record that already failed before stays out of the count, so one
accepted breaking publish does not make every later one ask again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from .models import Environment, Record
from .schema import validate_record_data

# Rows streamed per round trip while scanning: bounds memory, not work.
SCAN_CHUNK_ROWS = 2000
DATA_TYPE_REMOVED = "the data type is not in the new schema"
FIELD_REMOVED = "the field is not in the new schema"


@dataclass
class FieldImpact:
    """How many records a field makes invalid, with one of the messages they would get."""

    name: str
    records: int = 0
    example: str = ""


@dataclass
class DataTypeImpact:
    """The records of one data type that would fail the new schema."""

    data_type: str
    records: int = 0
    fields: list[FieldImpact] = field(default_factory=list)

    def summary(self) -> str:
        counted = f"{self.records} {self.data_type} record{'s' if self.records != 1 else ''}"
        if self.fields and not self.fields[0].name:
            return f"{counted} ({DATA_TYPE_REMOVED})"
        return f"{counted} (fields: {', '.join(f'{each.name} {each.records}' for each in self.fields)})"


@dataclass
class EnvironmentImpact:
    environment: Environment
    data_types: list[DataTypeImpact] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(each.records for each in self.data_types)


@dataclass
class PublishImpact:
    """Every environment in which the publish would leave records invalid (none: nothing is left invalid)."""

    environments: list[EnvironmentImpact]

    @property
    def records(self) -> int:
        return sum(each.records for each in self.environments)

    def __bool__(self) -> bool:
        return self.records > 0

    def summary(self) -> str:
        """One line: `clinic: 12 patients records (fields: status 10, email 2); …`."""
        return "; ".join(
            f"{env.environment.slug}: " + ", ".join(dt.summary() for dt in env.data_types) for env in self.environments
        )

    def as_json(self) -> dict[str, Any]:
        return {
            env.environment.slug: {
                dt.data_type: {
                    "records": dt.records,
                    "fields": {f.name or "record": {"records": f.records, "example": f.example} for f in dt.fields},
                }
                for dt in env.data_types
            }
            for env in self.environments
        }


def records_left_invalid(schema: dict, environments: Iterable[Environment]) -> PublishImpact:
    """The records of `environments` that publishing the (valid) `schema` would leave failing it.

    Cost is bounded by what changes, not by the environment's size: data
    types whose fields are unchanged are not read at all; a removed data type
    is one COUNT in PostgreSQL; otherwise only rows that hold a changed field
    or lack a newly required one are read (jsonb `?|` / `?` filter in SQL),
    streamed SCAN_CHUNK_ROWS at a time, each checked on the changed fields
    only, and only counts are kept.
    """
    impacts = []
    for environment in environments:
        data_types = _environment_impact(schema, environment)
        if data_types:
            impacts.append(EnvironmentImpact(environment, data_types))
    return PublishImpact(impacts)


def _environment_impact(schema: dict, environment: Environment) -> list[DataTypeImpact]:
    current = environment.schema.get("data_types", {})
    new = schema["data_types"]
    found = []
    removed = sorted(set(current) - set(new))
    if removed:
        counts = (
            Record.objects.filter(environment=environment, data_type__in=removed)
            .values_list("data_type")
            .annotate(n=Count("id"))
        )
        for data_type, n in sorted(counts):
            found.append(DataTypeImpact(data_type, n, [FieldImpact("", n, DATA_TYPE_REMOVED)]))
    for data_type in sorted(new):
        impact = _data_type_impact(
            environment, data_type, current.get(data_type, {}).get("fields", {}), new[data_type]["fields"]
        )
        if impact is not None:
            found.append(impact)
    return found


def _data_type_impact(environment: Environment, data_type: str, old: dict, new: dict) -> DataTypeImpact | None:
    changed = sorted(name for name in set(old) | set(new) if _rule(old.get(name)) != _rule(new.get(name)))
    if not changed:
        return None
    newly_required = [
        name for name in changed if new.get(name, {}).get("required") and not old.get(name, {}).get("required")
    ]
    # A record can only newly fail on a changed field it holds, or a newly required one it lacks.
    may_fail = Q(data__has_any_keys=changed)
    for name in newly_required:
        may_fail |= ~Q(data__has_key=name)
    rows = Record.objects.filter(environment=environment, data_type=data_type).filter(may_fail)
    # The same rule records are written with, applied to the changed fields alone.
    judged = {"data_types": {data_type: {"fields": {name: new[name] for name in changed if name in new}}}}
    impact = DataTypeImpact(data_type)
    by_field: dict[str, FieldImpact] = {}
    for data in rows.values_list("data", flat=True).iterator(chunk_size=SCAN_CHUNK_ROWS):
        if not isinstance(data, dict):
            continue
        errors = validate_record_data(judged, data_type, {name: data[name] for name in changed if name in data})
        if not errors:
            continue
        impact.records += 1
        for name, message in errors.items():
            entry = by_field.setdefault(name, FieldImpact(name))
            entry.records += 1
            entry.example = entry.example or (FIELD_REMOVED if name not in new else message)
    if not impact.records:
        return None
    impact.fields = sorted(by_field.values(), key=lambda each: (-each.records, each.name))
    return impact


def _rule(spec: dict | None) -> dict | None:
    # A label is for people; it never makes a value valid or invalid.
    return None if spec is None else {key: value for key, value in spec.items() if key != "label"}
