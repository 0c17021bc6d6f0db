"""The audit trail: one helper every mutation calls, and the queries the Audit page runs."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from portal.client_address import client_ip
from portal.spreadsheets import csv_lines

from .models import AuditEvent, Environment

# Audit details are shown to every auditor and exported to CSV: a key that
# looks like it carries a secret is a programming error, refused loudly.
_SECRET_LOOKING_KEY = re.compile(r"secret|password|token|signing_key|private", re.IGNORECASE)


def record_audit(
    action: str,
    *,
    request: HttpRequest | None = None,
    actor: Any = None,
    actor_label: str | None = None,
    actor_type: str | None = None,
    target: models.Model | None = None,
    target_label: str | None = None,
    environment: Environment | None = None,
    details: dict | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one audit event.

    `actor` is the user who acted (defaults to `request.user`). API clients and
    background jobs pass `actor_type` ("client" or "system") and `actor_label`.
    IP (`client_ip`: the client behind any trusted proxy) and user agent come from the request when there is one;
    code that has only the address (the token endpoint's domain functions) passes `ip`.
    """
    details = details or {}
    _refuse_secret_keys(details)
    actor = acting_user(request, actor)
    if actor_type is None:
        actor_type = AuditEvent.ActorType.USER if actor is not None else AuditEvent.ActorType.SYSTEM
    if actor_label is None:
        actor_label = actor.get_username() if actor is not None else "system"
    return AuditEvent.objects.create(
        action=action,
        actor_type=actor_type,
        actor_user=actor,
        actor_label=actor_label[:255],
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label if target_label is not None else str(target) if target is not None else "")[:255],
        environment=environment,
        ip=client_ip(request) if request is not None else ip,
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request is not None else "")[:512],
        details=details,
    )


def acting_user(request: HttpRequest | None, actor: Any = None):
    """The user a change is attributed to: `actor` if given, else the request's logged-in user, else None."""
    if actor is not None:
        return actor
    if request is not None and request.user.is_authenticated:
        return request.user
    return None


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
