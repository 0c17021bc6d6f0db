"""A scrape of /metrics over many webhooks and stored attempts, for the benchmark (`metrics` scenario)."""

from __future__ import annotations

import statistics
import time

ENVIRONMENTS = 50


def measure(webhooks: int, attempts: int) -> dict:
    """Seed `webhooks` webhooks and `attempts` attempts (two per delivery, one delivery a second going back,
    spread over the webhooks), roll them up as beat does, then time GET /metrics (median of 5 after one)."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from webhooks.models import Attempt
    from webhooks.rollup import roll_up

    ids = _webhooks(webhooks)
    if Attempt.objects.count() < attempts:
        _seed(connection, ids, attempts // 2)
    started = time.perf_counter()
    roll_up()
    rollup_ms = round((time.perf_counter() - started) * 1000, 1)
    settings.METRICS_TOKEN = "bench"  # noqa: S105 - a token for this in-process client only
    client = Client()
    timings, size = [], 0
    for _ in range(6):
        started = time.perf_counter()
        answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer bench")
        timings.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"/metrics answered {answer.status_code}")
        size = len(answer.content)
    timings = timings[1:]  # the first warms caches
    series = sum(1 for line in answer.content.decode().splitlines() if line and not line.startswith("#"))
    return {
        "webhooks": len(ids),
        "attempts": Attempt.objects.count(),
        "first_roll_up_ms": rollup_ms,
        "scrape_ms": {"median": round(statistics.median(timings), 1), "max": round(max(timings), 1)},
        "series": series,
        "bytes": size,
    }


def _webhooks(count: int) -> list[int]:
    """`count` webhooks over ENVIRONMENTS environments (each holds at most WEBHOOKS_PER_ENVIRONMENT_MAX)."""
    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.models import Webhook

    have = list(Webhook.objects.filter(name__startswith="bench-metrics-").values_list("pk", flat=True))
    if len(have) >= count:
        return have[:count]
    environments = [
        Environment.objects.filter(slug=f"bench-metrics-{n}").first() or make_environment(f"bench-metrics-{n}")
        for n in range(ENVIRONMENTS)
    ]
    Webhook.objects.bulk_create(
        Webhook(
            environment=environments[n % ENVIRONMENTS],
            name=f"bench-metrics-{n}",
            url="http://127.0.0.1:9999/hooks",
            event_types=["patients.created"],
        )
        for n in range(len(have), count)
    )
    return list(Webhook.objects.filter(name__startswith="bench-metrics-").values_list("pk", flat=True))


def _seed(connection, ids: list[int], deliveries: int) -> None:
    """Deliveries one a second going back (a tenth failed), two attempts each, the webhooks taking turns;
    and one waiting delivery per webhook, due a minute ago. Straight in SQL."""
    import datetime

    from django.utils import timezone

    from benchmarks.history_pages import room_for
    from webhooks.partitions import create_months

    if connection.vendor == "postgresql":
        create_months(timezone.now() - datetime.timedelta(seconds=deliveries + 1), timezone.now(), connection)
        room_for(connection, deliveries + len(ids))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH hooks AS (SELECT array_agg(id ORDER BY id) AS id, array_agg(environment_id ORDER BY id) AS env
                           FROM webhooks_webhook WHERE id = ANY(%s))
            INSERT INTO webhooks_delivery (webhook_id, environment_id, message_id, event_count, event_types, is_test,
                is_heartbeat,
                status, created_at, body, attempt_count, last_attempt_at, last_status_code, last_error,
                last_duration_ms, delivered_at, lease_owner, probes)
            SELECT hooks.id[1 + g %% cardinality(hooks.id)], hooks.env[1 + g %% cardinality(hooks.id)],
                'msg_' || md5(%s || g), 1, 'patients.created', false, false,
                CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                now() - (g || ' seconds')::interval, '{}', 2, now() - (g || ' seconds')::interval,
                CASE WHEN g %% 10 = 0 THEN 503 ELSE 200 END, '', (g::bigint * 7919) %% 900 + 5,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE now() - (g || ' seconds')::interval + interval '1 second' END,
                '', 0
            FROM generate_series(1, %s) AS g, hooks
            """,
            [ids, "seed", deliveries],
        )
        cursor.execute(
            """
            INSERT INTO webhooks_attempt (delivery_id, webhook_id, number, trigger, started_at, duration_ms, url,
                request_headers, status_code, response_headers, response_body, error, error_detail, succeeded,
                triggered_by)
            SELECT d.id, d.webhook_id, n.n, 'scheduled', d.created_at, d.last_duration_ms,
                'http://127.0.0.1:9999/hooks', '{}',
                CASE WHEN n.n = 1 THEN 500 ELSE d.last_status_code END, '{}', '', '', '', n.n = 2
                AND d.last_status_code = 200, ''
            FROM webhooks_delivery d CROSS JOIN (VALUES (1), (2)) AS n(n)
            WHERE d.webhook_id = ANY(%s)
            """,
            [ids],
        )
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (webhook_id, environment_id, message_id, event_count, event_types, is_test,
                is_heartbeat,
                status, created_at, next_attempt_at, body, attempt_count, last_status_code, last_error,
                last_duration_ms, lease_owner, probes)
            SELECT id, environment_id, 'msg_' || md5('waiting' || id), 1, 'patients.created', false, false, 'pending',
                now() - interval '1 minute', now() - interval '1 minute', '', 0, NULL, '', 0, '', 0
            FROM webhooks_webhook WHERE id = ANY(%s)
            """,
            [ids],
        )
        cursor.execute("ANALYZE webhooks_delivery; ANALYZE webhooks_attempt; ANALYZE webhooks_webhook;")
