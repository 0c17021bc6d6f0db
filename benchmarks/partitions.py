"""Attempts in monthly partitions, for the benchmark: history pages and the Overview over a year of
attempts, dropping a month against deleting it in batches, and migration 0017's conversion."""

from __future__ import annotations

import datetime
import time

YEAR_S = 365 * 24 * 3600.0


def measure(attempts: int, month_attempts: int, convert: bool) -> dict:
    """Seed `attempts` over 12 months, time the pages; then a month of `month_attempts`, dropped and deleted."""
    from django.db import connection

    from benchmarks.history_pages import _seed, time_pages
    from benchmarks.overview_queries import time_overview_page
    from webhooks import partitions
    from webhooks.rollup import roll_up

    environment, webhook = _webhook("bench-partitions")
    started = time.monotonic()
    _seed(connection, webhook, attempts // 2, every_s=YEAR_S / max(1, attempts // 2))
    seeded_in = time.monotonic() - started
    roll_up()
    figures: dict = {
        "attempts": _count(webhook),
        "months": len(partitions.partitions()),
        "seeded_in_s": round(seeded_in, 1),
        "pages": time_pages(environment, webhook),
        "overview_page": time_overview_page(environment),
    }
    figures["month"] = _drop_against_delete(month_attempts)
    if convert:
        figures["conversion"] = _conversion()
    return figures


def _webhook(slug: str):
    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.models import Webhook
    from webhooks.tests.factories import make_webhook

    environment = Environment.objects.filter(slug=slug).first() or make_environment(slug)
    webhook = Webhook.objects.filter(environment=environment).first() or make_webhook(
        environment, "http://127.0.0.1:9999/hooks", event_types=["patients.created", "patients.updated"]
    )
    return environment, webhook


def _count(webhook) -> int:
    from webhooks.models import Attempt

    return Attempt.objects.filter(webhook=webhook).count()


def _drop_against_delete(month_attempts: int) -> dict:
    """A month of attempts 14 months back (older than the year above), deleted in batches of 5,000 as a plain
    table's retention would, then seeded again and dropped as the partitions' retention does."""
    from django.db import connection
    from django.utils import timezone

    from benchmarks.history_pages import _seed
    from webhooks import partitions

    _, webhook = _webhook("bench-month")
    month = partitions.partition_for(timezone.now() - datetime.timedelta(days=14 * 31))
    ending_ago = (timezone.now() - month.end).total_seconds() + 1
    deliveries = month_attempts // 2
    every = (month.end - month.start).total_seconds() * 0.95 / max(1, deliveries)

    _seed(connection, webhook, deliveries, every_s=every, ending_ago_s=ending_ago)
    seeded = _count(webhook)
    started = time.perf_counter()
    batches = 0
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "DELETE FROM webhooks_attempt WHERE started_at >= %(start)s AND started_at < %(end)s AND id IN"
                " (SELECT id FROM webhooks_attempt WHERE webhook_id = %(webhook)s AND started_at >= %(start)s"
                " AND started_at < %(end)s LIMIT 5000)",
                {"webhook": webhook.pk, "start": month.start, "end": month.end},
            )
            batches += 1
            if cursor.rowcount == 0:
                break
    deleted_s = time.perf_counter() - started

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM webhooks_delivery WHERE webhook_id = %s", [webhook.pk])
    _seed(connection, webhook, deliveries, every_s=every, ending_ago_s=ending_ago)
    started = time.perf_counter()
    dropped = partitions.drop_expired(timezone.now() - month.end)
    dropped_s = time.perf_counter() - started
    return {
        "attempts": seeded,
        "batched_delete_s": round(deleted_s, 2),
        "delete_batches": batches,
        "drop_s": round(dropped_s, 3),
        "dropped": dropped.dropped,
        "bar": "drop < 1 s",
        "holds": dropped_s < 1.0 and dropped.dropped == [month.name],
    }


def _conversion() -> dict:
    """Migration 0017's step both ways over every attempt seeded so far (workers stopped, as documented)."""
    from django.db import connection, transaction

    from webhooks.attempts_conversion import to_partitioned, to_plain
    from webhooks.models import Attempt

    attempts = Attempt.objects.count()
    started = time.perf_counter()
    with transaction.atomic():
        to_plain(connection)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        to_partitioned(connection)
    partitioned_s = time.perf_counter() - started
    return {
        "attempts": attempts,
        "to_partitioned_s": round(partitioned_s, 1),
        "back_to_plain_s": round(plain_s, 1),
        "per_10m_attempts_s": round(partitioned_s * 10_000_000 / max(1, attempts), 1),
    }
