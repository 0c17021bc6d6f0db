"""Delivery history queries: filtered, sorted, keyset-paginated so pages stay fast with millions of rows.

A page is fetched with `WHERE (sort_key, id) < (cursor)` on an index, never
with OFFSET, so page 1000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from environments.models import Environment, Event
from portal import inputs

from .delivery.outbound import ERROR_CLASSES
from .models import Delivery, Webhook

# sort name -> (field, label); every sort is descending on the field, then on id.
SORTS = {
    "newest": ("id", "Created, newest first"),
    "oldest": ("id", "Created, oldest first"),
    "slowest": ("last_duration_ms", "Slowest first"),
    "attempts": ("attempt_count", "Most attempts first"),
}


class HistoryFilterError(ValueError):
    """A filter value that cannot be used, with the sentence saying why."""


@dataclass
class HistoryFilters:
    status: str = ""
    event_type: str = ""
    # An event id (evt_…), a webhook-id (msg_…), an HTTP status code, a port, an error class, or part of a
    # webhook's name or URL.
    search: str = ""
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None


@dataclass
class HistoryPage:
    deliveries: list[Delivery]
    next_cursor: str | None


def deliveries_of(
    *, environment: Environment | None = None, webhook: Webhook | None = None, filters: HistoryFilters
) -> QuerySet[Delivery]:
    """Deliveries of a webhook or of a whole environment, filtered (not yet sorted or paged)."""
    deliveries = Delivery.objects.all()
    if webhook is not None:
        deliveries = deliveries.filter(webhook=webhook)
    elif environment is not None:
        deliveries = deliveries.filter(environment=environment)
    if filters.status:
        if filters.status not in Delivery.Status.values:
            raise HistoryFilterError(f"unknown status “{filters.status}”")
        deliveries = deliveries.filter(status=filters.status)
    if filters.event_type:
        deliveries = deliveries.filter(carrying(filters.event_type))
    if problem := inputs.range_problem(filters.since, filters.until):
        raise HistoryFilterError(problem)
    if filters.since:
        deliveries = deliveries.filter(created_at__gte=filters.since)
    if filters.until:
        deliveries = deliveries.filter(created_at__lt=filters.until)
    search = filters.search.strip()
    if search:
        deliveries = deliveries.filter(_search(search))
    return deliveries


def carrying(event_type: str) -> Q:
    """Deliveries that carry an event of this type (`event_types` holds them space-separated)."""
    return (
        Q(event_types=event_type)
        | Q(event_types__startswith=f"{event_type} ")
        | Q(event_types__contains=f" {event_type} ")
        | Q(event_types__endswith=f" {event_type}")
    )


def _search(term: str) -> Q:
    if term.startswith("msg_"):
        return Q(message_id=term)
    if term.startswith("evt_"):
        try:
            uid = uuid.UUID(term.removeprefix("evt_"))
        except ValueError:
            raise HistoryFilterError(f"“{term}” is not an event id") from None
        event = Event.objects.filter(uid=uid).values_list("pk", flat=True).first()
        return Q(events=event) if event else Q(pk__in=[])
    digits = term.isascii() and term.isdigit()  # "²".isdigit() too, and int() refuses it
    if digits and len(term) == 3:
        return Q(last_status_code=int(term))
    if digits:
        # Longer digits are a port: the URL's ":8443", ended by its path, query or the end of the URL.
        return Q(webhook__in=Webhook.objects.filter(url__regex=rf":{term}([/?#]|$)"))
    words = term.lower().replace(" ", "_")
    errors = [name for name in ERROR_CLASSES if words in name]
    # Anything else is part of a webhook's name or URL; a few webhooks, so they are found first.
    matches = Q(webhook__in=Webhook.objects.filter(Q(name__icontains=term) | Q(url__icontains=term)))
    return matches | Q(last_error__in=errors) if errors else matches


def page_of(deliveries: QuerySet[Delivery], *, sort: str, cursor: str = "", size: int = 50) -> HistoryPage:
    """One page in the chosen order, after `cursor` (from the previous page)."""
    if sort not in SORTS:
        raise HistoryFilterError(f"unknown sort “{sort}”")
    field = SORTS[sort][0]
    ascending = sort == "oldest"
    if cursor:
        value, last_id = _decode(cursor)
        if field == "id":
            deliveries = deliveries.filter(pk__gt=last_id) if ascending else deliveries.filter(pk__lt=last_id)
        else:
            deliveries = deliveries.filter(Q(**{f"{field}__lt": value}) | Q(**{field: value, "pk__lt": last_id}))
    order = (["id"] if ascending else ["-id"]) if field == "id" else [f"-{field}", "-id"]
    rows = list(deliveries.select_related("webhook").order_by(*order)[: size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, field), last.pk)
    return HistoryPage(rows, next_cursor)


def encode_cursor(value: int, last_id: int) -> str:
    """The `after=` value that continues a page after the row with this sort value and id."""
    return base64.urlsafe_b64encode(json.dumps([value, last_id]).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, int]:
    try:
        value, last_id = inputs.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value, last_id = int(value), int(last_id)
        inputs.check([value, last_id])  # both are compared with 64-bit columns
        return value, last_id
    except (ValueError, TypeError, OverflowError):
        raise HistoryFilterError("this page link is out of date; start again from the first page") from None
