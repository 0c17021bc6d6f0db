"""The Audit page's queries: its filters, its pages and its CSV export, fast over millions of events.

Every query is ordered newest first on (occurred_at, id) and reads one of the indexes migration 0009 made:
(occurred_at, id), (environment, occurred_at, id), (action, occurred_at, id), and on PostgreSQL a trigram
index for the actor's name, so filtered or not, a page reads about its own rows.

- Pages go by keyset (`after=` the last row's time and id), never by OFFSET, and nothing counts the whole
  trail: page 1,000 costs what page 1 costs.
- The export reads in keyset batches (`in_batches`), each its own short query, not through a server-side cursor:
  behind PgBouncer in transaction mode (DATABASE_POOLER) a cursor cannot outlive its transaction, and
  without one psycopg would fetch the whole result before the first byte is sent.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from portal.spreadsheets import csv_lines

from .models import AuditEvent, Environment

NEWEST_FIRST = ("-occurred_at", "-id")
EXPORT_BATCH = 5000
EXPORT_KEYS = 100_000  # the most (id, time) keys the export reads at once (by actor): ~10 MB
# Microseconds since the epoch and an id: both fit a signed 64-bit column.
_CURSOR_LIMIT = 2**63


class AuditCursorError(ValueError):
    """An `after=` value that is not one this page made."""


def filter_audit(
    events: QuerySet[AuditEvent],
    *,
    environment: Environment | None = None,
    actor: str = "",
    action: str = "",
    since: datetime.date | None = None,
    until: datetime.date | None = None,
) -> QuerySet[AuditEvent]:
    """Narrow `events` by the Audit page's filters; dates are inclusive calendar days in the current time zone.

    `action` matches an action or the actions it prefixes up to a dot (`patient_data` finds
    `patient_data.viewed`); `actor` is part of the actor's name, any case."""
    if environment is not None:
        events = events.filter(environment=environment)
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if action:
        events = events.filter(action__in=actions_matching(action))
    # Bounds on the column itself (not on its date), so the (occurred_at, id) index serves them.
    if since is not None:
        events = events.filter(occurred_at__gte=_start_of(since))
    if until is not None and until < datetime.date.max:
        events = events.filter(occurred_at__lt=_start_of(until + datetime.timedelta(days=1)))
    return events


def actions_matching(text: str) -> list[str]:
    """The actions recorded so far that `text` names: itself, or those it prefixes up to a dot.

    The actions are a short list written by the code (tens), read by skipping through the action index (one
    probe per distinct action), so the filter becomes equality on one action, which its index serves in order.
    """
    return [action for action in distinct_actions() if action == text or action.startswith(f"{text}.")]


def distinct_actions() -> list[str]:
    """Every distinct action in the trail, in order: a loose index scan (a probe per action, not a row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE found(action) AS (
                SELECT MIN(action) FROM environments_auditevent
                UNION ALL
                SELECT (SELECT MIN(e.action) FROM environments_auditevent e WHERE e.action > found.action)
                FROM found WHERE found.action IS NOT NULL
            )
            SELECT action FROM found WHERE action IS NOT NULL
            """
        )
        return [row[0] for row in cursor.fetchall()]


def _start_of(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=timezone.get_current_timezone())


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None  # `after=` for the next (older) page; None on the last


def page_of(events: QuerySet[AuditEvent], *, after: str = "", size: int = 50) -> AuditPage:
    """`size` events, newest first, older than the row `after` names (from the previous page's link)."""
    if after:
        events = older_than(events, *decode_cursor(after))
    rows = list(events.select_related("environment").order_by(*NEWEST_FIRST)[: size + 1])
    if len(rows) <= size:
        return AuditPage(rows, None)
    rows = rows[:size]
    return AuditPage(rows, encode_cursor(rows[-1]))


def older_than(events: QuerySet[AuditEvent], moment: datetime.datetime, last_id: int) -> QuerySet[AuditEvent]:
    """The events after (occurred_at, id) in newest-first order. The bare `<=` bound is what the index scan
    starts from; the OR only sorts out the rows of that very microsecond."""
    return events.filter(occurred_at__lte=moment).filter(Q(occurred_at__lt=moment) | Q(id__lt=last_id))


def encode_cursor(event: AuditEvent) -> str:
    """The `after=` value that continues after `event`: its time in microseconds since the epoch, and its id."""
    moment = event.occurred_at - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return f"{moment // datetime.timedelta(microseconds=1)}.{event.pk}"


def decode_cursor(cursor: str) -> tuple[datetime.datetime, int]:
    try:
        micros, last_id = (int(part) for part in cursor.split("."))
        if not (-_CURSOR_LIMIT < micros < _CURSOR_LIMIT and 0 < last_id < _CURSOR_LIMIT):
            raise ValueError(cursor)
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        return epoch + datetime.timedelta(microseconds=micros), last_id
    except (ValueError, OverflowError):
        raise AuditCursorError("This page link is out of date; start again from the newest events.") from None


# What the export reads of each event: plain tuples (no model instances), the id and time first for the keyset.
_EXPORTED = (
    "id",
    "occurred_at",
    "actor_type",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "environment__slug",
    "ip",
    "user_agent",
    "details",
)


def in_batches(events: QuerySet[AuditEvent], size: int = EXPORT_BATCH, keys: int | None = None) -> Iterator[list]:
    """All of `events`, newest first, as lists of up to `size` tuples of `_EXPORTED`, with no server-side cursor:
    each batch is a keyset query of its own, read on an index in order.

    A filter no index reads in order (part of an actor's name, `keys` given) would cost a pass over all its
    remaining matches per batch; then the (id, time) keys of the next matches come first, in queries growing by
    4 from `size` to `keys`, and their rows by id: the first rows leave at once, and a year of one actor takes a
    few passes, not one per batch."""
    ordered = events.order_by(*NEWEST_FIRST)
    if keys is None:
        yield from _keyset(ordered.values_list(*_EXPORTED), size)
        return
    by_id = AuditEvent.objects.order_by(*NEWEST_FIRST).values_list(*_EXPORTED)
    for found in _keyset(ordered.values_list("id", "occurred_at"), size, grow_to=keys):
        for start in range(0, len(found), size):
            yield list(by_id.filter(pk__in=[pk for pk, _ in found[start : start + size]]))


def _keyset(rows: QuerySet, size: int, *, grow_to: int | None = None) -> Iterator[list]:
    """`rows` (tuples starting with id and time, newest first) a query at a time: `size` rows, or growing by 4
    up to `grow_to`."""
    want = size
    batch = list(rows[:want])
    while batch:
        yield batch
        if len(batch) < want:
            return
        last_id, last_at = batch[-1][:2]
        if grow_to:
            want = min(want * 4, grow_to)
        batch = list(older_than(rows, last_at, last_id)[:want])


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


def iter_csv(events: QuerySet[AuditEvent], *, batch: int = EXPORT_BATCH, keys: int | None = None) -> Iterator[str]:
    """Yield the events as CSV, newest first: the BOM and header, then a chunk of lines per keyset batch
    (a chunk a batch rather than a line a row: each chunk is a write to the client)."""
    lines = csv_lines(CSV_COLUMNS, (_cells(row) for rows in in_batches(events, batch, keys) for row in rows))
    yield next(lines)
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= batch:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def _cells(row: tuple) -> list:
    _, occurred_at, actor_type, actor, action, target_type, target_id, target, environment, ip, agent, details = row
    return [
        occurred_at.isoformat(),
        actor_type,
        actor,
        action,
        target_type,
        target_id,
        target,
        environment or "",
        ip or "",
        agent,
        json.dumps(details, sort_keys=True),
    ]
