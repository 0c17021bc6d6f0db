"""The audit trail: what every mutation records (`record_audit`, `audited`); the Audit page's queries are in
`audit_log.py`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import models, transaction

from portal.actor import Actor

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
