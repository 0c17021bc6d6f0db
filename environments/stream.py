"""The event stream: positions in commit order, and reading an environment's events after a position.

Why positions are given after the commit. PostgreSQL gives ids and
timestamps when a row is inserted, not when its transaction commits: writer A
inserts id 10, writer B inserts id 11 and commits, a reader reads past 11,
then A commits, and a reader that goes on "after 11" never sees 10. So an event
is written without a position, and the sequencer (`assign_positions`) gives
positions only to events already committed, one environment at a time, under
that environment's stream row lock. A reader reads only positioned events, and
every event positioned later gets a higher position than any it could have
read: a reader that has seen P and reads "after P" misses nothing and reads
nothing twice, however transactions interleave.

Who runs the sequencer: whoever reads (the feed, the changes listing, a
long-poll that sees something new), and beat every few seconds
(`environments.tasks.sequence_streams`), so positions follow commits within
moments even when nobody reads. Writers pay nothing for it. Within one batch,
events take positions in id order: a record's changes are written under its
row lock, so they keep their order.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Max, Q, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from .models import Environment, Event, EventStream

# Events placed per sequencer transaction; the rest go in the next one.
BATCH = 5000


def assign_positions(environment_id: int) -> int:
    """Give positions to the environment's committed events that have none, in id order; how many were placed."""
    placed = 0
    while True:
        count = _assign_batch(environment_id)
        placed += count
        if count < BATCH:
            return placed


def _assign_batch(environment_id: int) -> int:
    with transaction.atomic():
        last = _lock_stream(environment_id)
        # A statement after the lock: it sees every event committed so far, and every position the previous
        # holder of the lock gave.
        ids = list(
            Event.objects.filter(environment_id=environment_id, position__isnull=True, is_test=False)
            .order_by("id")
            .values_list("id", flat=True)[:BATCH]
        )
        if not ids:
            return 0
        _set_positions(ids, last + 1)
        EventStream.objects.filter(environment_id=environment_id).update(last_position=last + len(ids))
        return len(ids)


def _lock_stream(environment_id: int) -> int:
    """Lock the environment's stream row (creating it if need be) and return its last position."""
    stream = EventStream.objects.select_for_update().filter(environment_id=environment_id).first()
    if stream is None:
        EventStream.objects.bulk_create([EventStream(environment_id=environment_id)], ignore_conflicts=True)
        stream = EventStream.objects.select_for_update().get(environment_id=environment_id)
    return stream.last_position


def _set_positions(ids: list[int], first: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE environments_event AS event SET position = placed.position"
                " FROM unnest(%s::bigint[], %s::bigint[]) AS placed(id, position) WHERE event.id = placed.id",
                [ids, list(range(first, first + len(ids)))],
            )
        return
    with connection.cursor() as cursor:  # SQLite: writers are serial already
        cursor.executemany(
            "UPDATE environments_event SET position = %s WHERE id = %s",
            [(first + offset, event_id) for offset, event_id in enumerate(ids)],
        )


def has_unpositioned(environment_id: int) -> bool:
    """Whether committed events wait for a position (cheap: a partial index holds only those)."""
    return Event.objects.filter(environment_id=environment_id, position__isnull=True, is_test=False).exists()


def head(environment_id: int) -> int:
    """The last position given: every event at or below it is committed and placed."""
    last = EventStream.objects.filter(environment_id=environment_id).values_list("last_position", flat=True).first()
    return last or 0


def current_position(environment: Environment) -> int:
    """The head after placing what has committed: a full listing read after this misses nothing the stream
    holds up to it, and everything committed later comes after it."""
    if has_unpositioned(environment.pk):
        assign_positions(environment.pk)
    return head(environment.pk)


def pruned_through(environment_id: int) -> int:
    return (
        EventStream.objects.filter(environment_id=environment_id).values_list("pruned_through", flat=True).first() or 0
    )


def sequence_all() -> int:
    """Place every environment's waiting events (beat)."""
    waiting = (
        Event.objects.filter(position__isnull=True, is_test=False).values_list("environment_id", flat=True).distinct()
    )
    return sum(assign_positions(environment_id) for environment_id in list(waiting))


# --- Reading ------------------------------------------------------------------------


class CursorExpired(Exception):
    """The events after this cursor were pruned: the reader must resync from the lists."""

    def __init__(self, after: int, pruned: int):
        self.after, self.pruned = after, pruned
        super().__init__(f"events up to position {pruned} were pruned; the cursor {after} is older")


@dataclass(frozen=True)
class Page:
    """Events after a position, as JSON texts in position order, and the position to read after next."""

    events: list[str]
    next_position: int


def read(environment: Environment, after: int | None, limit: int, data_types: Iterable[str] | None = None) -> Page:
    """Events of `data_types` (all when None) after position `after` (None: from the oldest kept), at most
    `limit`, each as the JSON a webhook body carries plus "position". Places waiting events first. Raises
    CursorExpired when events after `after` were pruned."""
    if has_unpositioned(environment.pk):
        assign_positions(environment.pk)
    top = head(environment.pk)
    pruned = pruned_through(environment.pk)
    if after is None:
        after = pruned
    if after < pruned:
        raise CursorExpired(after, pruned)
    rows = _rows(environment.pk, after, top, limit, None if data_types is None else sorted(set(data_types)))
    slug = json.dumps(environment.slug)
    events = [_event_json(slug, *row) for row in rows]
    next_position = rows[-1][0] if len(rows) == limit else max(top, after)
    return Page(events, next_position)


# On PostgreSQL the id and the time are written as text by the database, as `event_payload` writes them
# (`evt_` + the uid's hex; ISO 8601 in UTC with a Z, microseconds only when there are any): turning each
# row's time into a datetime and back was the largest cost of a page after its data.
_PG_UID_HEX = "replace(environments_event.uid::text, '-', '')"
_PG_TIMESTAMP = (
    "to_char(environments_event.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN date_part('microseconds', environments_event.occurred_at)::bigint %% 1000000 = 0 THEN ''"
    " ELSE to_char(environments_event.occurred_at AT TIME ZONE 'UTC', '.US') END || 'Z'"
)


def _rows(environment_id: int, after: int, top: int, limit: int, data_types: list[str] | None) -> list[tuple]:
    """(position, uid hex, type, timestamp text, data JSON text) of each event read."""
    events = Event.objects.filter(environment_id=environment_id, position__gt=after, position__lte=top)
    if data_types is not None:
        if not data_types:
            return []
        prefixes = [f"{name}." for name in data_types]
        events = events.filter(_type_in(prefixes))
    # The data as the database's JSON text: parsing it only to write it out again was most of a read's time.
    events = events.annotate(data_text=Cast("data", output_field=TextField())).order_by("position")
    if connection.vendor == "postgresql":
        # Constant SQL, no parameters: nothing of the request reaches it.
        events = events.annotate(uid_hex=RawSQL(_PG_UID_HEX, []), stamp=RawSQL(_PG_TIMESTAMP, []))  # noqa: S611
        return list(events.values_list("position", "uid_hex", "type", "stamp", "data_text")[:limit])
    return [
        (position, uid.hex, event_type, occurred_at.isoformat().replace("+00:00", "Z"), data)
        for position, uid, event_type, occurred_at, data in events.values_list(
            "position", "uid", "type", "occurred_at", "data_text"
        )[:limit]
    ]


def _type_in(prefixes: list[str]) -> Q:
    condition = Q()
    for prefix in prefixes:
        condition |= Q(type__startswith=prefix)
    return condition


def _event_json(slug: str, position: int, uid_hex: str, event_type: str, timestamp: str, data: str) -> str:
    # Built as text: the feed's speed is mostly this, and the shape is fixed (event_payload's, plus position).
    return (
        f'{{"id":"evt_{uid_hex}","type":{json.dumps(event_type)},"timestamp":"{timestamp}",'
        f'"environment":{slug},"position":{position},"data":{data}}}'
    )


@dataclass(frozen=True)
class Change:
    """A record's latest change in a range of positions: its position, and whether it deleted the record."""

    position: int
    record_id: uuid.UUID
    deleted: bool
    external_id: str | None


@dataclass(frozen=True)
class Changes:
    changes: list[Change]
    next_position: int
    has_more: bool


def changes(environment: Environment, data_type: str, since: int, limit: int) -> Changes:
    """The records of `data_type` changed after position `since`, each once at its latest change, in position
    order, at most `limit`. Places waiting events first; raises CursorExpired when changes after `since` were
    pruned."""
    if has_unpositioned(environment.pk):
        assign_positions(environment.pk)
    top = head(environment.pk)
    pruned = pruned_through(environment.pk)
    if since < pruned:
        raise CursorExpired(since, pruned)
    latest = list(
        Event.objects.filter(
            environment_id=environment.pk,
            position__gt=since,
            position__lte=top,
            type__startswith=f"{data_type}.",
            record_id__isnull=False,
        )
        .values("record_id")
        .annotate(last=Max("position"))
        .order_by("last")
        .values_list("last", flat=True)[: limit + 1]
    )
    has_more = len(latest) > limit
    positions = latest[:limit]
    rows = Event.objects.filter(environment_id=environment.pk, position__in=positions).order_by("position")
    found = [
        Change(position, record_id, event_type.endswith(".deleted"), _external_id(data))
        for position, record_id, event_type, data in rows.values_list("position", "record_id", "type", "data")
        if position is not None and record_id is not None  # as filtered above: this says so to the type checker
    ]
    return Changes(found, found[-1].position if has_more else max(top, since), has_more)


def _external_id(data: object) -> str | None:
    value = data.get("external_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def wait_for_events(
    environment: Environment, after: int | None, limit: int, data_types: Iterable[str] | None, wait_seconds: float
) -> Page:
    """`read`, but when nothing is there yet, look again every POLL_SECONDS for up to `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    page = read(environment, after, limit, data_types)
    while not page.events and time.monotonic() < deadline:
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if has_unpositioned(environment.pk) or head(environment.pk) > page.next_position:
            page = read(environment, page.next_position, limit, data_types)
    return page


# How often a long-poll looks for new events: a commit is seen within this, plus the read.
POLL_SECONDS = 0.05
