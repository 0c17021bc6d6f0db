"""Delivery history pages through Django over many stored attempts (seeded in SQL), for the benchmark."""

from __future__ import annotations

import statistics
import time
import uuid


def measure(target_attempts: int) -> dict:
    """Seed the bench-history webhook up to `target_attempts` attempts, then time its pages (median of 5, max)."""
    from django.db import connection

    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.models import Attempt, Webhook
    from webhooks.tests.factories import make_webhook

    environment = Environment.objects.filter(slug="bench-history").first() or make_environment("bench-history")
    webhook = Webhook.objects.filter(environment=environment).first() or make_webhook(
        environment, "http://127.0.0.1:9999/hooks", event_types=["patients.created", "patients.updated"]
    )
    have = Attempt.objects.filter(webhook=webhook).count()
    seeded_in = 0.0
    if have < target_attempts:
        started = time.monotonic()
        _seed(connection, webhook, (target_attempts - have) // 2)
        seeded_in = time.monotonic() - started
    attempts = Attempt.objects.filter(webhook=webhook).count()
    return {"attempts": attempts, "seeded_in_s": round(seeded_in, 1), "pages": time_pages(environment, webhook)}


def time_pages(environment, webhook) -> dict:
    """Median and max of 5 loads (after one to warm caches) of each history page of `webhook` and its environment."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from webhooks.history import encode_cursor
    from webhooks.models import Delivery

    deliveries = Delivery.objects.filter(webhook=webhook).count()
    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin")
    client = Client()
    client.force_login(admin)
    base = f"/e/{environment.slug}/webhooks/{webhook.pk}/deliveries/"
    middle = Delivery.objects.filter(webhook=webhook).order_by("id").values_list("pk", flat=True)[deliveries // 2]
    pages = {
        "first page": base,
        "page in the middle (keyset)": f"{base}?after={encode_cursor(middle, middle)}",
        "failed only": f"{base}?status=failed",
        "event type filter": f"{base}?event_type=patients.updated",
        "status code search": f"{base}?q=503",
        "slowest first": f"{base}?sort=slowest",
        "environment history": f"/e/{environment.slug}/deliveries/",
    }
    figures = {}
    for name, url in pages.items():
        timings = []
        for _ in range(6):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
        timings = timings[1:]  # the first warms caches
        figures[name] = {"median_ms": round(statistics.median(timings), 1), "max_ms": round(max(timings), 1)}
    return figures


def room_for(connection, deliveries: int, ranges: int = 12) -> None:
    """Ranges of delivery ids for `deliveries` more, in about `ranges` ranges, as beat would have made them
    while they came in (PostgreSQL)."""
    from webhooks.delivery_ranges import extend, is_partitioned

    if is_partitioned(connection):
        size = max(1000, deliveries // ranges + 1)
        extend(connection, deliveries + size, size)


def _seed(connection, webhook, deliveries: int, *, every_s: float = 1.0, ending_ago_s: float = 0.0) -> None:
    """Insert deliveries with two attempts each, straight in SQL (the ORM would take an hour): one delivery
    every `every_s` seconds going back from `ending_ago_s` seconds ago, in the attempt partitions they need."""
    import datetime

    from django.utils import timezone

    from webhooks.partitions import create_months

    if connection.vendor == "postgresql":
        newest = timezone.now() - datetime.timedelta(seconds=ending_ago_s)
        create_months(newest - datetime.timedelta(seconds=every_s * (deliveries + 1)), newest, connection)
        room_for(connection, deliveries)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (webhook_id, environment_id, message_id, event_count, event_types, is_test,
                is_heartbeat,
                status, created_at, body, attempt_count, last_attempt_at, last_status_code, last_error,
                last_duration_ms, delivered_at, lease_owner, probes)
            SELECT %(webhook)s, %(environment)s, 'msg_' || md5(%(salt)s || g), 1,
                CASE WHEN g %% 3 = 0 THEN 'patients.updated' ELSE 'patients.created' END, false, false,
                CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                t.at, '{"id":"evt_seed"}', 2, t.at,
                CASE WHEN g %% 10 = 0 THEN 503 ELSE 200 END, '', (g::bigint * 7919) %% 900 + 5,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE t.at END, '', 0
            FROM generate_series(1, %(deliveries)s) AS g,
                LATERAL (SELECT now() - (%(ago)s + g * %(every)s) * interval '1 second' AS at) AS t
            """,
            {
                "webhook": webhook.pk,
                "environment": webhook.environment_id,
                "salt": uuid.uuid4().hex,
                "deliveries": deliveries,
                "ago": ending_ago_s,
                "every": every_s,
            },
        )
        cursor.execute(
            """
            INSERT INTO webhooks_attempt (delivery_id, webhook_id, number, trigger, started_at, duration_ms, url,
                request_headers, status_code, response_headers, response_body, error, error_detail, succeeded,
                triggered_by)
            SELECT d.id, d.webhook_id, n.n, 'scheduled', d.created_at, d.last_duration_ms,
                'http://127.0.0.1:9999/hooks', '{"webhook-id": "seed"}',
                CASE WHEN n.n = 1 THEN 500 ELSE d.last_status_code END,
                '{}', 'seed', '', '', n.n = 2 AND d.last_status_code = 200, ''
            FROM webhooks_delivery d CROSS JOIN (VALUES (1), (2)) AS n(n)
            WHERE d.webhook_id = %s AND NOT EXISTS (SELECT 1 FROM webhooks_attempt a WHERE a.delivery_id = d.id)
            """,
            [webhook.pk],
        )
        cursor.execute("ANALYZE webhooks_delivery; ANALYZE webhooks_attempt;")
