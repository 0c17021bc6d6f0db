"""Migration 0019's conversion of deliveries and their event links to ranges of id on PostgreSQL (and back).

An offline step like 0017's: both tables are locked for the copy, so run `migrate` with workers stopped
(README, Production; `benchmarks/partitions.py` measures how long it takes). Existing deliveries are put in
one range per month they were created in, so retention drops them a month at a time like new ones; the
ranges after the last id are sized from the last DELIVERY_RANGE_DAYS. Every foreign key to a delivery is kept.
"""

from __future__ import annotations

from django.conf import settings

from . import table_rebuild
from .delivery_ranges import LINKS, TABLE, create_range, extend, size_for, span


def to_ranges(connection) -> None:
    """Rebuild deliveries as partitioned by ranges of id and links by `delivery_id` on the same bounds.
    No-op on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        references = table_rebuild.drop_references_to(cursor, TABLE)
        deliveries = table_rebuild.start(cursor, TABLE, "RANGE (id)")
        links = table_rebuild.start(cursor, LINKS, "RANGE (delivery_id)")
        cursor.execute(
            f"SELECT min(id) FROM {deliveries.old} GROUP BY date_trunc('month', created_at) ORDER BY 1"  # noqa: S608
        )
        starts: list[int] = []
        for (first,) in cursor.fetchall():
            if not starts or first > starts[-1]:
                starts.append(first)
        cursor.execute(
            f"SELECT max(id), count(*) FILTER (WHERE created_at >= now() - %s) FROM {deliveries.old}",  # noqa: S608
            [span()],
        )
        newest, recent = cursor.fetchone()
        size = size_for(recent)
        # The first month's range takes every id below the second's; the current month ends at the last id.
        bounds = [*starts[1:], (newest or 0) + 1] if starts else []
        lower = None
        for upper in bounds:
            create_range(lower, upper, connection)
            lower = upper
        table_rebuild.copy_rows(cursor, deliveries)
        table_rebuild.copy_rows(cursor, links)
        table_rebuild.finish(cursor, deliveries, key="id")
        table_rebuild.finish(cursor, links, key="id, delivery_id")
        extend(connection, settings.DELIVERY_RANGES_AHEAD * size, size)
        table_rebuild.restore_references(cursor, references)


def to_plain(connection) -> None:
    """The reverse: plain tables keyed by id (migrating back before 0019). No-op on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        references = table_rebuild.drop_references_to(cursor, TABLE)
        rebuilds = [table_rebuild.start(cursor, table, None) for table in (TABLE, LINKS)]
        for rebuild in rebuilds:
            table_rebuild.copy_rows(cursor, rebuild)
            table_rebuild.finish(cursor, rebuild, key="id")
        table_rebuild.restore_references(cursor, references)
