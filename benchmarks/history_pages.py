"""Delivery history pages through Django over many stored attempts (seeded in SQL), for the benchmark."""

from __future__ import annotations

import statistics
import time
import uuid


def measure(target_attempts: int) -> dict:
    """Seed the bench-history webhook up to `target_attempts` attempts, then time its pages (median of 5, max)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.history import encode_cursor
    from webhooks.models import Attempt, Delivery, Webhook
    from webhooks.tests.factories import make_webhook

    environment = Environment.objects.filter(slug="bench-history").first() or make_environment("bench-history")
    webhook = Webhook.objects.filter(environment=environment).first() or make_webhook(
        environment, "http://127.0.0.1:9999/hooks", event_types=["patients.created", "patients.updated"]
    )
    have = Attempt.objects.filter(delivery__webhook=webhook).count()
    seeded_in = 0.0
    if have < target_attempts:
        started = time.monotonic()
        _seed(connection, webhook, (target_attempts - have) // 2)
        seeded_in = time.monotonic() - started
    attempts = Attempt.objects.filter(delivery__webhook=webhook).count()
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
    return {"attempts": attempts, "seeded_in_s": round(seeded_in, 1), "pages": figures}


def _seed(connection, webhook, deliveries: int) -> None:
    """Insert deliveries with two attempts each, straight in SQL (the ORM would take an hour)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (webhook_id, environment_id, message_id, event_count, event_types, is_test,
                is_heartbeat,
                status, created_at, body, attempt_count, last_attempt_at, last_status_code, last_error,
                last_duration_ms, delivered_at, lease_owner, probes)
            SELECT %s, %s, 'msg_' || md5(%s || g), 1,
                CASE WHEN g %% 3 = 0 THEN 'patients.updated' ELSE 'patients.created' END, false, false,
                CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                now() - (g || ' seconds')::interval, '{"id":"evt_seed"}', 2, now() - (g || ' seconds')::interval,
                CASE WHEN g %% 10 = 0 THEN 503 ELSE 200 END, '', (g::bigint * 7919) %% 900 + 5,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE now() - (g || ' seconds')::interval END, '', 0
            FROM generate_series(1, %s) AS g
            """,
            [webhook.pk, webhook.environment_id, uuid.uuid4().hex, deliveries],
        )
        cursor.execute(
            """
            INSERT INTO webhooks_attempt (delivery_id, number, trigger, started_at, duration_ms, url, request_headers,
                status_code, response_headers, response_body, error, error_detail, succeeded, triggered_by)
            SELECT d.id, n.n, 'scheduled', d.created_at, d.last_duration_ms,
                'http://127.0.0.1:9999/hooks', '{"webhook-id": "seed"}',
                CASE WHEN n.n = 1 THEN 500 ELSE d.last_status_code END,
                '{}', 'seed', '', '', n.n = 2 AND d.last_status_code = 200, ''
            FROM webhooks_delivery d CROSS JOIN (VALUES (1), (2)) AS n(n)
            WHERE d.webhook_id = %s AND NOT EXISTS (SELECT 1 FROM webhooks_attempt a WHERE a.delivery_id = d.id)
            """,
            [webhook.pk],
        )
        cursor.execute("ANALYZE webhooks_delivery; ANALYZE webhooks_attempt;")
