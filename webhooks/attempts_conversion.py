"""Migration 0017's conversion of the attempts table to monthly partitions on PostgreSQL (and back).

An offline step: the table is locked for the copy (writers wait, readers of history
too), so run `migrate` with workers stopped; README Production says how, and
`benchmarks/partitions.py` measures how long it takes (54.6 s for 10 M attempts on a quiet 2-core VM, 155 s under load).
The copy fills each attempt's webhook from its delivery in the same pass.
Names (indexes, constraints, the identity sequence) are kept, so later migrations see the same table.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone

from .partitions import TABLE, create_months, month_of, next_month

OLD = f"{TABLE}_unpartitioned"


def to_partitioned(connection) -> None:
    """Rebuild the plain attempts table as a partitioned one, a partition per month its attempts span and the
    months ahead, each attempt's `webhook_id` filled from its delivery. No-op on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        definitions = _rebuild_start(cursor, partitioned=True)
        columns = definitions[0]
        cursor.execute(f"SELECT min(started_at), max(started_at) FROM {OLD}")  # noqa: S608 - our own names
        first, last = cursor.fetchone()
        now = timezone.now()
        first = min(first or now, now - datetime.timedelta(days=31))
        ahead = month_of(now)
        for _ in range(settings.ATTEMPT_PARTITIONS_AHEAD):
            ahead = next_month(ahead)
        create_months(first, max(last or now, ahead), connection)
        chosen = ", ".join("COALESCE(a.webhook_id, d.webhook_id)" if c == "webhook_id" else f"a.{c}" for c in columns)
        cursor.execute(
            f"INSERT INTO {TABLE} ({', '.join(columns)}) SELECT {chosen} "  # noqa: S608 - our own names
            f"FROM {OLD} a JOIN webhooks_delivery d ON d.id = a.delivery_id"
        )
        _rebuild_finish(cursor, definitions, key="id, started_at")


def to_plain(connection) -> None:
    """The reverse: one plain table keyed by id (migrating back before 0017). No-op on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        definitions = _rebuild_start(cursor, partitioned=False)
        columns = definitions[0]
        listed = ", ".join(columns)
        cursor.execute(f"INSERT INTO {TABLE} ({listed}) SELECT {listed} FROM {OLD}")  # noqa: S608
        _rebuild_finish(cursor, definitions, key="id")


Definitions = tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]


def _rebuild_start(cursor, *, partitioned: bool) -> Definitions:
    """Lock the table, set its indexes and foreign keys aside, rename it, and make the new one in its place."""
    cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname <> %s",
        [TABLE, f"{TABLE}_pkey"],
    )
    # A partitioned table's own index is shown `ON ONLY`: the new one must reach every partition.
    indexes = [(name, definition.replace(" ON ONLY ", " ON ")) for name, definition in cursor.fetchall()]
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [TABLE],
    )
    foreign_keys = cursor.fetchall()
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [TABLE],
    )
    columns = [row[0] for row in cursor.fetchall()]
    cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {TABLE}_pkey TO {OLD}_pkey")
    for name, _ in indexes:
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:50]}_old"')
    partitioning = " PARTITION BY RANGE (started_at)" if partitioned else ""
    cursor.execute(
        f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS "
        f"INCLUDING STORAGE){partitioning}"
    )
    return columns, indexes, foreign_keys


def _rebuild_finish(cursor, definitions: Definitions, *, key: str) -> None:
    """Key, index and constrain the new table as the old one was, carry the id sequence on, drop the old."""
    cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY ({key})")
    _, indexes, foreign_keys = definitions
    for _, definition in indexes:
        cursor.execute(definition)
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [OLD])
    old_sequence = cursor.fetchone()[0]
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608
    last_value, is_called = cursor.fetchone()
    cursor.execute(f"DROP TABLE {OLD}")
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    sequence = cursor.fetchone()[0]
    cursor.execute("SELECT setval(%s, %s, %s)", [sequence, last_value, is_called])
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {TABLE}_id_seq")
