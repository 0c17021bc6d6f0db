"""The audit trail: what every mutation records (`record_audit`, `audited`), and the queries the Audit page runs."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import models, transaction
from django.db.models import Q, QuerySet

from portal.actor import Actor
from portal.spreadsheets import csv_lines

from .models import AuditEvent, Environment

# Audit details are shown to every auditor and exported to CSV: a key that
# looks like it carries a secret is a programming error, refused loudly.
_SECRET_LOOKING_KEY = re.compile(r"secret|password|token|signing_key|private", re.IGNORECASE)


def record_audit(
    actor: Actor,
    action: str,
    *,
    target: models.Model | None = None,
    target_label: str | None = None,
    environment: Environment | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Append one audit event: `actor` says who, from where and through what (see `portal.actor`)."""
    details = details or {}
    _refuse_secret_keys(details)
    return AuditEvent.objects.create(
        action=action,
        actor_type=actor.kind,
        actor_user=actor.user,
        actor_label=actor.label[:255],
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label if target_label is not None else str(target) if target is not None else "")[:255],
        environment=environment,
        ip=actor.ip,
        user_agent=actor.user_agent[:512],
        details=details,
    )


@dataclass
class PendingAudit:
    """The event an `audited` block records when it ends; the block may set its target or details."""

    target: models.Model | None = None
    details: dict = field(default_factory=dict)
    event: AuditEvent | None = None  # once recorded


@contextmanager
def audited(
    actor: Actor,
    action: str,
    *,
    target: models.Model | None = None,
    environment: Environment | None = None,
    details: dict | None = None,
) -> Iterator[PendingAudit]:
    """Run the block and record its audit event in one transaction: the change and its event, or neither.

    The event is written as the block ends, so it names the target as the block left it (a renamed client by
    its new name); the block may set `target` (one it made) or `details` (what it counted) on what it is given.
    Not for deletions: a deleted row has no id left to name, so those record first (`record_audit`).
    """
    pending = PendingAudit(target=target, details=dict(details or {}))
    with transaction.atomic():
        yield pending
        pending.event = record_audit(
            actor, action, target=pending.target, environment=environment, details=pending.details
        )


def _refuse_secret_keys(details: dict, path: str = "") -> None:
    for key, value in details.items():
        if _SECRET_LOOKING_KEY.search(str(key)):
            raise ValueError(f"audit details must not carry secrets (key {path}{key!r})")
        if isinstance(value, dict):
            _refuse_secret_keys(value, f"{path}{key}.")


def filter_audit(
    events: QuerySet[AuditEvent],
    *,
    environment: Environment | None = None,
    actor: str = "",
    action: str = "",
    since: datetime.date | None = None,
    until: datetime.date | None = None,
) -> QuerySet[AuditEvent]:
    """Narrow `events` by the Audit page's filters; dates are inclusive calendar days."""
    if environment is not None:
        events = events.filter(environment=environment)
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if action:
        events = events.filter(Q(action=action) | Q(action__startswith=f"{action}."))
    if since is not None:
        events = events.filter(occurred_at__date__gte=since)
    if until is not None:
        events = events.filter(occurred_at__date__lte=until)
    return events


CSV_COLUMNS = (
    "occurred_at",
    "actor_type",
    "actor",
    "action",
    "target_type",
    "target_id",
    "target",
    "environment",
    "ip",
    "user_agent",
    "details",
)


def iter_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    """Yield the events as CSV lines (BOM and header first), in the order given."""
    return csv_lines(
        CSV_COLUMNS,
        (
            [
                event.occurred_at.isoformat(),
                event.actor_type,
                event.actor_label,
                event.action,
                event.target_type,
                event.target_id,
                event.target_label,
                event.environment.slug if event.environment else "",
                event.ip or "",
                event.user_agent,
                json.dumps(event.details, sort_keys=True),
            ]
            for event in events
        ),
    )
