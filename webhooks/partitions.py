"""Monthly time partitions of the attempts table on PostgreSQL: made ahead by beat, dropped whole by retention.

Attempts are the table that grows with traffic (one row per request sent, bodies
included). Partitioned by `started_at` a month at a time, retention drops a whole
month (`DETACH … CONCURRENTLY`, then `DROP TABLE`: no row is deleted, no index is
touched, no vacuum follows) instead of a `DELETE` that grows with the table. There
is no DEFAULT partition: it would block `DETACH … CONCURRENTLY` and silently take
rows whose month was never made; `ensure_ahead` keeps months ready instead.

The partitions are plain declarative partitioning managed here (not pg_partman):
one beat task and two SQL statements are all the upkeep needs, they run the same in
tests and in production, and nothing is added to the database's extensions.

The database's primary key is (id, started_at), as PostgreSQL requires the partition
key in it; Django still knows `id` as the key, which the identity sequence keeps
unique. SQLite (`make run`) keeps a plain table: every function here is a no-op there.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re

from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

TABLE = "webhooks_attempt"
_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})_(\d{{2}})$")
# One beat at a time makes or drops partitions (transaction-scoped: fine behind PgBouncer).
_LOCK = 2_025_017
_WAITING = ["pending", "retrying"]


@dataclasses.dataclass(frozen=True)
class Partition:
    """One month of attempts: [start, end)."""

    name: str
    start: datetime.datetime
    end: datetime.datetime


@dataclasses.dataclass
class Dropped:
    """What one retention run did: months dropped, and months kept because a waiting delivery has attempts there."""

    dropped: list[str] = dataclasses.field(default_factory=list)
    kept_for_waiting: list[str] = dataclasses.field(default_factory=list)


def month_of(moment: datetime.datetime) -> datetime.datetime:
    """The first instant (UTC) of the month `moment` falls in."""
    moment = moment.astimezone(datetime.UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: datetime.datetime) -> datetime.datetime:
    return (month + datetime.timedelta(days=32)).replace(day=1)


def partition_for(month: datetime.datetime) -> Partition:
    month = month_of(month)
    return Partition(f"{TABLE}_p{month:%Y_%m}", month, next_month(month))


def is_partitioned(connection=default_connection, table: str = TABLE) -> bool:
    """Whether `table` (attempts unless named) is partitioned: on PostgreSQL after its migration, never on SQLite."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [table])
        return cursor.fetchone() is not None


def children(parent: str, connection=default_connection) -> list[tuple[str, str]]:
    """The partitions of `parent` that are attached: (name, bound as `FOR VALUES …`); empty on a plain table."""
    if not is_partitioned(connection, parent):
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [parent],
        )
        return cursor.fetchall()


def partitions(connection=default_connection) -> list[Partition]:
    """The attempts table's partitions, oldest first (empty on a plain table)."""
    found = []
    for name, _ in children(TABLE, connection):
        matched = _NAME.match(name)
        if matched:
            start = datetime.datetime(int(matched[1]), int(matched[2]), 1, tzinfo=datetime.UTC)
            found.append(Partition(name, start, next_month(start)))
    return sorted(found, key=lambda partition: partition.start)


def create_months(first: datetime.datetime, last: datetime.datetime, connection=default_connection) -> list[str]:
    """Make the months from `first`'s to `last`'s that are missing; return the names made."""
    made = []
    month = month_of(first)
    with connection.cursor() as cursor:
        while month <= month_of(last):
            partition = partition_for(month)
            cursor.execute("SELECT to_regclass(%s)", [partition.name])
            if cursor.fetchone()[0] is None:
                cursor.execute(
                    f"CREATE TABLE {partition.name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                    [partition.start, partition.end],
                )
                made.append(partition.name)
            month = next_month(month)
    return made


def ensure_ahead(now: datetime.datetime | None = None, months: int | None = None) -> list[str]:
    """Make this month's partition and the next `months` (ATTEMPT_PARTITIONS_AHEAD) if missing (daily, from beat).

    A row whose month has no partition cannot be written, so months are made well
    ahead: a beat that stops for weeks still leaves the engine room.
    """
    if not is_partitioned():
        return []
    now = now or timezone.now()
    months = settings.ATTEMPT_PARTITIONS_AHEAD if months is None else months
    last = month_of(now)
    for _ in range(months):
        last = next_month(last)
    with transaction.atomic(), default_connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK])
        # Making a partition briefly locks the parent: give up rather than queue writers behind a long query.
        cursor.execute("SET LOCAL lock_timeout = '5s'")
        made = create_months(month_of(now), last)
    if made:
        logger.info("attempt partitions made: %s", ", ".join(made))
    return made


def drop_expired(older_than: datetime.timedelta, now: datetime.datetime | None = None) -> Dropped:
    """Drop every month of attempts that ends before now - `older_than`, unless a waiting delivery has attempts
    in it (that month waits for the next run). Returns what was dropped and kept.

    A month goes only once all of it is past the retention, so attempts are kept at
    least `older_than`, at most a month longer. Outside a transaction the month is
    detached concurrently (writers never wait); inside one (tests), plainly.
    """
    result = Dropped()
    if not is_partitioned():
        return result
    cutoff = (now or timezone.now()) - older_than
    _finish_pending_detaches()
    for partition in partitions():
        if partition.end > cutoff:
            break
        if _holds_waiting(partition.name):
            result.kept_for_waiting.append(partition.name)
            continue
        detach(TABLE, partition.name)
        # Checked again once detached: a delivery that went back to waiting meanwhile keeps its history.
        if _holds_waiting(partition.name):
            _attach(partition)
            result.kept_for_waiting.append(partition.name)
            continue
        _forget_manual_sends_of(partition.name)
        with default_connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {partition.name}")
        result.dropped.append(partition.name)
    if result.dropped or result.kept_for_waiting:
        logger.info("attempt months dropped: %s; kept for waiting: %s", result.dropped, result.kept_for_waiting)
    return result


def _holds_waiting(name: str) -> bool:
    # From the few waiting deliveries (their partial index) into the month's (delivery, number) index.
    with default_connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT EXISTS (SELECT 1 FROM webhooks_delivery d WHERE d.status = ANY(%s)
                AND EXISTS (SELECT 1 FROM {name} a WHERE a.delivery_id = d.id))""",  # noqa: S608 - our own names
            [_WAITING],
        )
        return cursor.fetchone()[0]


def _forget_manual_sends_of(name: str) -> None:
    # A send by hand names its attempt without a database constraint (none can point into a partitioned
    # table by id alone): clear the names of attempts about to go, as deleting them through Django would.
    with default_connection.cursor() as cursor:
        for column in ("attempt_id", "altered_attempt_id"):
            cursor.execute(
                f"UPDATE webhooks_manualsend SET {column} = NULL WHERE {column} IN (SELECT id FROM {name})"  # noqa: S608
            )


def detach(parent: str, name: str) -> None:
    """Detach partition `name` of `parent`: concurrently (writers never wait) outside a transaction, plainly
    inside one (tests)."""
    with default_connection.cursor() as cursor:
        if default_connection.in_atomic_block:
            cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name}")
        else:
            cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name} CONCURRENTLY")


def finalize_pending_detaches(parent: str) -> list[str]:
    """A concurrent detach interrupted half-way leaves its partition "detach pending": finish it, and return
    the names, for the caller to attach again (they are then dropped or kept like the others)."""
    with default_connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = %s::regclass AND i.inhdetachpending""",
            [parent],
        )
        pending = [row[0] for row in cursor.fetchall()]
        for name in pending:
            cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name} FINALIZE")
    return pending


def _attach(partition: Partition) -> None:
    with default_connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {TABLE} ATTACH PARTITION {partition.name} FOR VALUES FROM (%s) TO (%s)",
            [partition.start, partition.end],
        )


def _finish_pending_detaches() -> None:
    for name in finalize_pending_detaches(TABLE):
        matched = _NAME.match(name)
        if matched:
            _attach(partition_for(datetime.datetime(int(matched[1]), int(matched[2]), 1, tzinfo=datetime.UTC)))
