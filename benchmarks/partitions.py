"""Attempts in monthly partitions and deliveries in ranges of id, for the benchmark: history pages and the
Overview over a year of attempts, dropping a month of attempts against deleting it in batches, dropping a
range of deliveries against pruning them row by row, and migrations 0017's and 0019's conversions."""

from __future__ import annotations

import datetime
import time

YEAR_S = 365 * 24 * 3600.0


def measure(attempts: int, month_attempts: int, convert: bool) -> dict:
    """A range of `month_attempts` / 2 deliveries dropped and pruned; `attempts` over 12 months, the pages timed;
    then a month of `month_attempts`, dropped and deleted; then the conversions, if asked."""
    from django.db import connection

    from benchmarks.history_pages import _seed, time_pages
    from benchmarks.overview_queries import time_overview_page
    from webhooks import delivery_ranges, partitions
    from webhooks.rollup import roll_up

    deliveries_range = _range_against_prune(month_attempts // 2)
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
    figures["delivery_range"] = deliveries_range
    figures["delivery_ranges"] = len(delivery_ranges.ranges())
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


def _range_against_prune(deliveries: int) -> dict:
    """A range of `deliveries` deliveries made 14 months ago (an event link and two attempts each), pruned row
    by row as plain tables' retention does (`retention.prune_deliveries`), then made again and dropped as the
    daily task does on PostgreSQL: the attempts' month, then the range."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from environments.models import Event
    from webhooks import delivery_ranges, partitions, retention

    environment, webhook = _webhook("bench-range")
    month = partitions.partition_for(timezone.now() - datetime.timedelta(days=14 * 31))
    partitions.create_months(month.start, month.start)
    upper = delivery_ranges.ranges()[-1].upper
    measured = delivery_ranges.create_range(upper, upper + deliveries)
    delivery_ranges.create_range(upper + deliveries, upper + deliveries + settings.DELIVERY_RANGE_MIN_IDS)
    event = Event.objects.create(environment=environment, type="patients.created", occurred_at=month.start)
    every = (month.end - month.start).total_seconds() * 0.95 / max(1, deliveries)
    older_than = timezone.now() - month.end

    _seed_range(connection, webhook, event.pk, upper, deliveries, month.start, every)
    with connection.cursor() as cursor:  # the ids are given, as traffic would have taken them
        cursor.execute("SELECT setval('webhooks_delivery_id_seq', %s)", [upper + deliveries - 1])
    started = time.perf_counter()
    pruned = retention.prune_deliveries(older_than)
    pruned_s = time.perf_counter() - started

    _seed_range(connection, webhook, event.pk, upper, deliveries, month.start, every)
    started = time.perf_counter()
    months = partitions.drop_expired(older_than)
    month_s = time.perf_counter() - started
    started = time.perf_counter()
    dropped = delivery_ranges._all_before(measured, month.end) and delivery_ranges.drop_range(measured)
    range_s = time.perf_counter() - started
    return {
        "deliveries": deliveries,
        "links": deliveries,
        "attempts": 2 * deliveries,
        "row_prune_s": round(pruned_s, 2),
        "row_pruned": pruned,
        "attempt_month_drop_s": round(month_s, 3),
        "attempt_months_dropped": months.dropped,
        "range_drop_s": round(range_s, 3),
        "dropped": dropped,
        "holds": bool(dropped) and month_s + range_s < 1.0,
    }


def _seed_range(connection, webhook, event_id: int, first_id: int, deliveries: int, start, every_s: float) -> None:
    """Deliveries with ids from `first_id`, made every `every_s` seconds from `start`, finished, each with a link to
    one event and two attempts. Straight in SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (id, webhook_id, environment_id, message_id, event_count, event_types,
                is_test, is_heartbeat, status, created_at, body, attempt_count, last_attempt_at, last_status_code,
                last_error, last_duration_ms, delivered_at, lease_owner, probes)
            SELECT %(first)s + g, %(webhook)s, %(environment)s, 'msg_' || md5(%(first)s::text || g), 1,
                'patients.created', false, false, 'succeeded', t.at, '{"id":"evt_seed"}', 2, t.at, 200, '', 40,
                t.at, '', 0
            FROM generate_series(0, %(deliveries)s - 1) AS g,
                LATERAL (SELECT %(start)s + g * %(every)s * interval '1 second' AS at) AS t
            """,
            {
                "first": first_id,
                "webhook": webhook.pk,
                "environment": webhook.environment_id,
                "deliveries": deliveries,
                "start": start,
                "every": every_s,
            },
        )
        cursor.execute(
            "INSERT INTO webhooks_deliveryevent (delivery_id, event_id, webhook_id, sequence)"
            " SELECT id, %s, webhook_id, NULL FROM webhooks_delivery WHERE id >= %s AND id < %s",
            [event_id, first_id, first_id + deliveries],
        )
        cursor.execute(
            """
            INSERT INTO webhooks_attempt (delivery_id, webhook_id, number, trigger, started_at, duration_ms, url,
                request_headers, status_code, response_headers, response_body, error, error_detail, succeeded,
                triggered_by)
            SELECT d.id, d.webhook_id, n.n, 'scheduled', d.created_at, 40, 'http://127.0.0.1:9999/hooks',
                '{}', CASE WHEN n.n = 1 THEN 500 ELSE 200 END, '{}', 'seed', '', '', n.n = 2, ''
            FROM webhooks_delivery d CROSS JOIN (VALUES (1), (2)) AS n(n) WHERE d.id >= %s AND d.id < %s
            """,
            [first_id, first_id + deliveries],
        )
        cursor.execute("ANALYZE webhooks_delivery; ANALYZE webhooks_deliveryevent; ANALYZE webhooks_attempt")


def _conversion() -> dict:
    """Migrations 0019's and 0017's steps both ways over every delivery and attempt seeded so far (workers
    stopped, as documented): back to plain tables in reverse order, then forward again."""
    from django.db import connection, transaction

    from webhooks import ranges_conversion
    from webhooks.attempts_conversion import to_partitioned, to_plain
    from webhooks.models import Attempt, Delivery

    attempts, deliveries = Attempt.objects.count(), Delivery.objects.count()
    started = time.perf_counter()
    with transaction.atomic():
        ranges_conversion.to_plain(connection)
    deliveries_plain_s = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        to_plain(connection)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        to_partitioned(connection)
    partitioned_s = time.perf_counter() - started
    started = time.perf_counter()
    with transaction.atomic():
        ranges_conversion.to_ranges(connection)
    ranges_s = time.perf_counter() - started
    return {
        "attempts": attempts,
        "to_partitioned_s": round(partitioned_s, 1),
        "back_to_plain_s": round(plain_s, 1),
        "per_10m_attempts_s": round(partitioned_s * 10_000_000 / max(1, attempts), 1),
        "deliveries": deliveries,
        "to_ranges_s": round(ranges_s, 1),
        "deliveries_back_to_plain_s": round(deliveries_plain_s, 1),
    }
