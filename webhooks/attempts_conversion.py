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

from . import table_rebuild
from .partitions import TABLE, create_months, month_of, next_month


def to_partitioned(connection) -> None:
    """Rebuild the plain attempts table as a partitioned one, a partition per month its attempts span and the
    months ahead, each attempt's `webhook_id` filled from its delivery. No-op on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        rebuild = table_rebuild.start(cursor, TABLE, "RANGE (started_at)")
        cursor.execute(f"SELECT min(started_at), max(started_at) FROM {rebuild.old}")  # noqa: S608 - our own names
        first, last = cursor.fetchone()
        now = timezone.now()
        first = min(first or now, now - datetime.timedelta(days=31))
        ahead = month_of(now)
        for _ in range(settings.ATTEMPT_PARTITIONS_AHEAD):
            ahead = next_month(ahead)
        create_months(first, max(last or now, ahead), connection)
        table_rebuild.copy_rows(
            cursor,
            rebuild,
            {"webhook_id": "COALESCE(a.webhook_id, d.webhook_id)"},
            "JOIN webhooks_delivery d ON d.id = a.delivery_id",
        )
        table_rebuild.finish(cursor, rebuild, key="id, started_at")


def to_plain(connection) -> None:
    """The reverse: one plain table keyed by id (migrating back before 0017). No-op on SQLite."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        rebuild = table_rebuild.start(cursor, TABLE, None)
        table_rebuild.copy_rows(cursor, rebuild)
        table_rebuild.finish(cursor, rebuild, key="id")
