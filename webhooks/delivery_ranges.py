"""Deliveries and their event links in ranges of id on PostgreSQL: made ahead by beat, dropped whole by retention.

Why ranges of id and not months: the engine reads a delivery by its id at every step (claim, send,
record), and a range of id takes each of those reads to one partition. Months of `created_at` made
every such read probe every month (73 months: 44.3 deliveries/s against 741.7/s, docs/capacity.md).
Ids grow with time, so a range is a span of time all the same: each new range is sized from the pace of
the current one to hold DELIVERY_RANGE_DAYS (a month; at least DELIVERY_RANGE_MIN_IDS ids), and retention
drops a range once its newest delivery is past the retention and none in it is waiting.

Event links (`webhooks_deliveryevent`) are partitioned by `delivery_id` on the same bounds: a range's
links go with it. The primary key stays `id` (it is the partition key), so every foreign key to a delivery
is kept. There is no DEFAULT partition; `ensure_ahead` keeps DELIVERY_RANGES_AHEAD ranges of room past the
last id given. SQLite (`make run`) keeps plain tables: every function here is a no-op there.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db import connection as default_connection
from django.utils import timezone

from . import partitions
from .partitions import Dropped, detach, finalize_pending_detaches

logger = logging.getLogger(__name__)

TABLE = "webhooks_delivery"
LINKS = "webhooks_deliveryevent"
_BOUND = re.compile(r"FROM \('?(MINVALUE|-?\d+)'?\) TO \('?(-?\d+)'?\)")
# One beat at a time makes ranges (transaction-scoped: fine behind PgBouncer); retention runs once a day.
_LOCK = 2_025_019
_WAITING = ["pending", "retrying"]


def span() -> datetime.timedelta:
    """How much time a new range is sized to hold (DELIVERY_RANGE_DAYS, a month by default)."""
    return datetime.timedelta(days=settings.DELIVERY_RANGE_DAYS)


@dataclasses.dataclass(frozen=True)
class Range:
    """Deliveries with ids in [lower, upper); `lower` None is the first range, which takes every id below."""

    lower: int | None
    upper: int

    @property
    def name(self) -> str:
        return f"{TABLE}_ids_{self._suffix}"

    @property
    def links(self) -> str:
        return f"{LINKS}_ids_{self._suffix}"

    @property
    def _suffix(self) -> str:
        return "first" if self.lower is None else str(self.lower)

    def bounds_sql(self) -> str:
        lower = "MINVALUE" if self.lower is None else str(int(self.lower))
        return f"FROM ({lower}) TO ({int(self.upper)})"

    def holds(self, column: str) -> str:
        """A condition on `column` (a delivery id) that is true inside the range."""
        below = f"{column} < {int(self.upper)}"
        return below if self.lower is None else f"{column} >= {int(self.lower)} AND {below}"


def is_partitioned(connection=default_connection) -> bool:
    """Whether deliveries are in ranges (PostgreSQL after migration 0019; never on SQLite)."""
    return partitions.is_partitioned(connection, TABLE)


def ranges(connection=default_connection) -> list[Range]:
    """The deliveries table's ranges, oldest first (empty on a plain table)."""
    found = []
    for _, bound in partitions.children(TABLE, connection):
        matched = _BOUND.search(bound or "")
        if matched:
            lower = None if matched[1] == "MINVALUE" else int(matched[1])
            found.append(Range(lower, int(matched[2])))
    return sorted(found, key=lambda each: each.upper)


def create_range(lower: int | None, upper: int, connection=default_connection) -> Range:
    """Make the range [lower, upper) of deliveries and of their links."""
    made = Range(lower, upper)
    with connection.cursor() as cursor:
        for parent, name in ((TABLE, made.name), (LINKS, made.links)):
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {parent} FOR VALUES {made.bounds_sql()}")
    return made


def last_id(connection=default_connection) -> int:
    """The last delivery id given (0 before the first)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
        sequence = cursor.fetchone()[0]
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # noqa: S608 - our own name
        value, called = cursor.fetchone()
    return value if called else value - 1


def next_size(connection=default_connection, now: datetime.datetime | None = None) -> int:
    """How many ids the next range holds: DELIVERY_RANGE_DAYS of deliveries at the pace of the current range,
    rounded up to DELIVERY_RANGE_MIN_IDS (and never below it)."""
    minimum = settings.DELIVERY_RANGE_MIN_IDS
    last = last_id(connection)
    current = next((each for each in ranges(connection) if each.upper > last), None)
    if current is None:
        return minimum
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, created_at FROM {TABLE} WHERE {current.holds('id')} ORDER BY id LIMIT 1"  # noqa: S608
        )
        first = cursor.fetchone()
    if first is None:
        return minimum
    elapsed = ((now or timezone.now()) - first[1]).total_seconds()
    if elapsed < 3600:  # too short a time to judge a pace from
        return minimum
    return size_for((last - first[0] + 1) * span().total_seconds() / elapsed)


def size_for(ids: float) -> int:
    """A range's size for `ids` deliveries: rounded up to DELIVERY_RANGE_MIN_IDS, and never below it."""
    minimum = settings.DELIVERY_RANGE_MIN_IDS
    return max(minimum, -(-int(ids) // minimum) * minimum)


def extend(connection, room: int, size: int) -> list[str]:
    """Add ranges of `size` after the last until there is `room` ids past the last one given."""
    made = []
    last = last_id(connection)
    existing = ranges(connection)
    if existing:
        upper = existing[-1].upper
    else:
        upper = last + 1 + size
        made.append(create_range(None, upper, connection).name)
    while upper - last - 1 < room:
        made.append(create_range(upper, upper + size, connection).name)
        upper += size
    return made


def ensure_ahead(now: datetime.datetime | None = None, ahead: int | None = None) -> list[str]:
    """Keep DELIVERY_RANGES_AHEAD ranges' worth of ids ready past the last one given (hourly, from beat).

    A delivery whose id has no range cannot be written, so room is kept for a couple of months at the
    current pace: a beat that stops for weeks, or traffic ten times the usual for days, still fits.
    """
    if not is_partitioned():
        return []
    ahead = settings.DELIVERY_RANGES_AHEAD if ahead is None else ahead
    with transaction.atomic(), default_connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        # Making a range briefly locks the parent: give up rather than queue writers behind a long query.
        cursor.execute("SET LOCAL lock_timeout = '5s'")
        size = next_size(default_connection, now)
        made = extend(default_connection, ahead * size, size)
    if made:
        logger.info("delivery ranges made: %s", ", ".join(made))
    return made


def drop_expired(older_than: datetime.timedelta, now: datetime.datetime | None = None) -> Dropped:
    """Drop every range of deliveries (with its links) whose ids are all given and whose newest delivery was
    created before now - `older_than`, unless a delivery in it is waiting (it waits for the next run).

    Deliveries are kept at least `older_than`, at most one range (about a month) longer. Attempts of them
    still in a month that is kept, and sends by hand naming them, are deleted first (few: re-sends made
    late), as deleting the deliveries through Django would.
    """
    result = Dropped()
    if not is_partitioned():
        return result
    cutoff = (now or timezone.now()) - older_than
    _attach_pending_again()
    last = last_id()
    for each in ranges():
        if each.upper > last + 1 or not _all_before(each, cutoff):
            break
        if drop_range(each):
            result.dropped.append(each.name)
        else:
            result.kept_for_waiting.append(each.name)
    if result.dropped or result.kept_for_waiting:
        logger.info("delivery ranges dropped: %s; kept: %s", result.dropped, result.kept_for_waiting)
    return result


def drop_range(each: Range) -> bool:
    """Drop one range of deliveries with its links, unless a delivery in it is waiting (or goes back to waiting
    while it is dropped): True if it went. What decides that a range is old enough is `drop_expired`."""
    if _holds_waiting(each.name) or not _detach_range(each):
        return False
    with default_connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {each.links}, {each.name}")
    return True


def _all_before(each: Range, cutoff: datetime.datetime) -> bool:
    with default_connection.cursor() as cursor:
        cursor.execute(f"SELECT max(created_at) FROM {each.name}")  # noqa: S608 - our own names
        newest = cursor.fetchone()[0]
    return newest is None or newest < cutoff


def _holds_waiting(name: str) -> bool:
    with default_connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {name} WHERE status = ANY(%s))", [_WAITING])  # noqa: S608
        return cursor.fetchone()[0]


def _detach_range(each: Range) -> bool:
    """Clear what names the range's deliveries, detach its links and deliveries; False (all attached again)
    if a delivery went back to waiting meanwhile, or something new named one of them."""
    with default_connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM webhooks_attempt WHERE {each.holds('delivery_id')}")  # noqa: S608
        # Nothing points at a send by hand: deleting its row is all Django's delete would do.
        cursor.execute(
            f"DELETE FROM webhooks_manualsend WHERE ({each.holds('delivery_id')}) OR ({each.holds('altered_id')})"  # noqa: S608
        )
    try:
        detach(LINKS, each.links)
        _unlink_from_deliveries(each.links)
        detach(TABLE, each.name)
    except DatabaseError:
        logger.warning("delivery range %s kept: something new names its deliveries", each.name, exc_info=True)
        _attach_pending_again()
        _attach(each)
        return False
    if _holds_waiting(each.name):
        _attach(each)
        return False
    return True


def _unlink_from_deliveries(links: str) -> None:
    # Detached, the links' range keeps its own foreign key to the deliveries, which would stop theirs from
    # being detached: it goes (attaching the range again brings it back).
    with default_connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND confrelid = %s::regclass",
            [links, TABLE],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE {links} DROP CONSTRAINT "{name}"')


def _attach(each: Range) -> None:
    with default_connection.cursor() as cursor:
        for parent, name in ((TABLE, each.name), (LINKS, each.links)):
            cursor.execute(
                "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) AND inhparent = %s::regclass",
                [name, parent],
            )
            if cursor.fetchone() is None:
                cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES {each.bounds_sql()}")


def _attach_pending_again() -> None:
    # A range whose concurrent detach was interrupted is finished detaching, then attached again: the next
    # look decides whether it goes.
    names = finalize_pending_detaches(TABLE) + finalize_pending_detaches(LINKS)
    for suffix in {name.rsplit("_ids_", 1)[1] for name in names}:
        # A range ends where the next one starts (the last range is never dropped, so there is a next).
        lower = None if suffix == "first" else int(suffix)
        following = [each.lower for each in ranges() if each.lower is not None and each.lower > (lower or 0)]
        if following:
            _attach(Range(lower, min(following)))
