"""What a new schema changes for integrators, in words: data types and fields added, removed or tightened.

Each change is marked *breaking* when a record or an event body that was
valid before can fail afterwards (a field made required, a type changed,
choices removed, a limit tightened, something removed), and *compatible*
otherwise. The event catalog's diff is this diff: event bodies carry the
records' fields (see `webhooks.event_schemas`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .publish_impact import PublishImpact


@dataclass(frozen=True)
class SchemaChange:
    """One change between two schemas, described for people."""

    data_type: str
    field: str | None
    description: str
    breaking: bool
    records: int = 0

    @property
    def verdict(self) -> str:
        return "breaking" if self.breaking else "compatible"

    def __str__(self) -> str:
        where = f"{self.data_type}.{self.field}" if self.field else self.data_type
        return f"{where}: {self.description}"


def schema_changes(old: dict, new: dict) -> list[SchemaChange]:
    """Every change from `old` to `new` (two schema documents), breaking ones first."""
    old_types = _data_types(old)
    new_types = _data_types(new)
    changes: list[SchemaChange] = []
    for name in sorted(set(old_types) | set(new_types)):
        if name not in old_types:
            changes.append(SchemaChange(name, None, "data type added", False))
        elif name not in new_types:
            changes.append(SchemaChange(name, None, "data type removed", True))
        else:
            changes.extend(_field_changes(name, _fields(old_types[name]), _fields(new_types[name])))
    return sorted(changes, key=lambda change: not change.breaking)


def with_record_counts(changes: list[SchemaChange], impact: PublishImpact) -> list[SchemaChange]:
    """`changes` with, on each breaking one, the number of existing records it would leave invalid."""
    counts: dict[tuple[str, str | None], int] = {}
    for environment in impact.environments:
        for data_type in environment.data_types:
            for field in data_type.fields:
                key = (data_type.data_type, field.name or None)
                counts[key] = counts.get(key, 0) + field.records
    return [
        SchemaChange(c.data_type, c.field, c.description, c.breaking, counts.get((c.data_type, c.field), 0))
        if c.breaking
        else c
        for c in changes
    ]


def _data_types(document: Any) -> dict:
    data_types = document.get("data_types") if isinstance(document, dict) else None
    return data_types if isinstance(data_types, dict) else {}


def _fields(definition: Any) -> dict:
    fields = definition.get("fields") if isinstance(definition, dict) else None
    return fields if isinstance(fields, dict) else {}


def _field_changes(data_type: str, old: dict, new: dict) -> list[SchemaChange]:
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if not isinstance(after, dict):
            if isinstance(before, dict):
                changes.append(SchemaChange(data_type, name, "field removed", True))
            continue
        if not isinstance(before, dict):
            required = bool(after.get("required"))
            words = "required field added" if required else "field added"
            changes.append(SchemaChange(data_type, name, words, required))
            continue
        for words, breaking in _rule_changes(before, after):
            changes.append(SchemaChange(data_type, name, words, breaking))
    return changes


def _rule_changes(before: dict, after: dict) -> list[tuple[str, bool]]:
    """(description, breaking) for each way one field's definition changes."""
    if before.get("type") != after.get("type"):
        return [(f"type changed from {before.get('type')} to {after.get('type')}", True)]
    found = []
    if bool(after.get("required")) != bool(before.get("required")):
        found.append(("field made required", True) if after.get("required") else ("field made optional", False))
    removed = [c for c in before.get("choices") or [] if c not in (after.get("choices") or [])]
    added = [c for c in after.get("choices") or [] if c not in (before.get("choices") or [])]
    if removed:
        found.append((f"choices removed: {', '.join(map(str, removed))}", True))
    if added:
        found.append((f"choices added: {', '.join(map(str, added))}", False))
    found.extend(_limit_changes(before, after))
    if before.get("label") != after.get("label"):
        found.append(("label changed", False))
    return found


# For each limit, whether a new value above the old one is the tighter one.
_LIMITS = {"max_length": False, "maximum": False, "minimum": True}


def _limit_changes(before: dict, after: dict) -> list[tuple[str, bool]]:
    found = []
    for key, higher_is_tighter in _LIMITS.items():
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        words = key.replace("_", " ")
        if new is None:
            found.append((f"{words} {old} lifted", False))
        elif old is None:
            found.append((f"{words} {new} set", True))
        else:
            tighter = (new > old) if higher_is_tighter else (new < old)
            found.append((f"{words} changed from {old} to {new}", tighter))
    return found
