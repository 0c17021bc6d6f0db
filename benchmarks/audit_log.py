"""The Audit page and its CSV export over millions of audit events (seeded in SQL), for the benchmark."""

from __future__ import annotations

import datetime
import statistics
import time

ENVIRONMENTS = 4
USERS = 40
CLIENTS = 20
RARE_ACTOR = "rare-auditor"  # one row in 100,000 (fewer rows: in 20): the actor filter's other path
COMMON_ACTOR = "user07"


def measure(rows: int, export_rows_max: int = 1_000_000, export_seconds_max: float = 60.0) -> dict:
    """Seed `rows` audit events over a year, then time the Audit page's filters and the CSV export."""
    from django.db import connection

    from environments.models import AuditEvent, Environment
    from environments.tests.factories import make_environment

    environments = [
        Environment.objects.filter(slug=f"bench-audit-{n}").first() or make_environment(f"bench-audit-{n}")
        for n in range(ENVIRONMENTS)
    ]
    rare_every = min(100_000, max(rows // 20, 1))
    started = time.monotonic()
    _seed(connection, rows, rare_every)
    seeded_in = time.monotonic() - started
    client, director = _clients(environments[0])
    return {
        "rows": AuditEvent.objects.count(),
        "seeded_in_s": round(seeded_in, 1),
        "pages": time_pages(client, director, environments[1], rare_every),
        "export": {
            "one_actor": time_export(client, f"actor={COMMON_ACTOR}", export_rows_max, export_seconds_max),
            "everything": time_export(client, "", export_rows_max, export_seconds_max),
        },
    }


def _clients(environment):
    """A Django test client signed in as an Admin, and one as a Program Director of `environment`."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from environments.models import Grant

    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin")
    director = User.objects.filter(username="bench-director").first() or User.objects.create_user("bench-director")
    Grant.objects.get_or_create(user=director, environment=environment, role=Grant.Role.PROGRAM_DIRECTOR)
    clients = Client(), Client()
    clients[0].force_login(admin)
    clients[1].force_login(director)
    return clients


def time_pages(client, director, environment, rare_every: int) -> dict:
    """Median and max of 5 loads (after one to warm caches) of each Audit page."""
    from environments.audit_log import encode_cursor
    from environments.models import AuditEvent

    ids = AuditEvent.objects.order_by("id").values_list("id", flat=True)
    middle = AuditEvent.objects.get(pk=ids[ids.count() // 2])
    newest = AuditEvent.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    week = (newest - datetime.timedelta(days=180)).date()
    week_range = f"since={week}&until={week + datetime.timedelta(days=6)}"
    pages = {
        "unfiltered, first page": "",
        "unfiltered, page in the middle (keyset)": f"after={encode_cursor(middle)}",
        f"actor {COMMON_ACTOR}": f"actor={COMMON_ACTOR}",
        f"actor {RARE_ACTOR} (1 row in {rare_every:,})": f"actor={RARE_ACTOR}",
        "action patient_data.viewed": "action=patient_data.viewed",
        "action patient_data (prefix)": "action=patient_data",
        "action sign_in (3 actions)": "action=sign_in",
        "action webhook.paused (rare)": "action=webhook.paused",
        "environment": f"environment={environment.slug}",
        "a week, 6 months ago": week_range,
        "environment + action + week": f"environment={environment.slug}&action=patient_data.viewed&{week_range}",
        f"actor {COMMON_ACTOR}, page in the middle": f"actor={COMMON_ACTOR}&after={encode_cursor(middle)}",
    }
    figures = {name: _timed(client, f"/audit/?{query}") for name, query in pages.items()}
    figures["Program Director of one environment"] = _timed(director, "/audit/")
    return figures


def _timed(client, url: str) -> dict:
    timings = []
    for _ in range(6):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or b"No audit events match" in response.content:
            raise RuntimeError(f"{url} answered {response.status_code} with no events")
    timings = timings[1:]  # the first warms caches
    return {"median_ms": round(statistics.median(timings), 1), "max_ms": round(max(timings), 1)}


def time_export(client, query: str, rows_max: int, seconds_max: float) -> dict:
    """Read the CSV export of `query` to its end (or `rows_max` rows, or `seconds_max`): time to the first
    byte and to the first row, total time and rows/s."""
    started = time.perf_counter()
    response = client.get(f"/audit/export.csv?{query}")
    first_byte = first_row = None
    lines = 0
    chunks = iter(response.streaming_content)
    for chunk in chunks:
        now = time.perf_counter()
        first_byte = first_byte or now
        lines += chunk.count(b"\n")
        if first_row is None and lines > 1:
            first_row = now
        if lines - 1 >= rows_max or now - started > seconds_max:
            break
    response.close()
    total = time.perf_counter() - started
    exported = max(lines - 1, 0)
    return {
        "rows": exported,
        "complete": lines - 1 < rows_max and total <= seconds_max,
        "first_byte_ms": round(((first_byte or started) - started) * 1000, 1),
        "first_row_ms": round(((first_row or started) - started) * 1000, 1),
        "total_s": round(total, 2),
        "rows_per_s": round(exported / total) if total else 0,
    }


def _seed(connection, rows: int, rare_every: int) -> None:
    """Insert `rows` audit events straight in SQL, one every (a year / rows) up to now, ids in time order, with
    the table's indexes dropped during the load and made again after (as a restore would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'environments_auditevent'"
            " AND indexname <> 'environments_auditevent_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        step = 500_000
        for first in range(1, rows + 1, step):
            last = min(first + step - 1, rows)
            cursor.execute(SEED, {"first": first, "last": last, "rows": rows, "rare": rare_every, **SEED_MIX})
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for _, definition in indexes:
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE environments_auditevent")


SEED_MIX = {"rare_actor": RARE_ACTOR, "envs": ENVIRONMENTS, "users": USERS, "clients": CLIENTS}
# Buckets of 1,000 (b) give the mix: token.issued 45 %, patient_data.viewed 30 %, sign-ins 11 %, summarised
# authentication failures 3 %, webhook, configuration and credential changes 10 %, the system's 1 %.
SEED = """
WITH envs AS (SELECT array_agg(id ORDER BY slug) AS ids FROM environments_environment WHERE slug LIKE 'bench-audit-%%')
INSERT INTO environments_auditevent (occurred_at, actor_type, actor_label, action, target_type, target_id,
    target_label, environment_id, ip, user_agent, details)
SELECT now() - (%(rows)s - g) * (interval '365 days' / %(rows)s),
    CASE WHEN g %% %(rare)s = 0 THEN 'user' WHEN b < 450 OR b BETWEEN 860 AND 889 THEN 'client'
         WHEN b >= 990 THEN 'system' ELSE 'user' END,
    CASE WHEN g %% %(rare)s = 0 THEN %(rare_actor)s
         WHEN b < 450 OR b BETWEEN 860 AND 889 THEN 'Client ' || c || ' (cli_' || md5(c::text) || ')'
         WHEN b >= 990 THEN 'system' ELSE 'user' || lpad(u::text, 2, '0') END,
    CASE WHEN b < 450 THEN 'token.issued' WHEN b < 750 THEN 'patient_data.viewed'
         WHEN b < 800 THEN 'sign_in.succeeded' WHEN b < 830 THEN 'sign_in.second_factor'
         WHEN b < 860 THEN 'sign_in.failed' WHEN b < 890 THEN 'client.authentication_failed'
         WHEN b < 920 THEN 'webhook.changed' WHEN b < 930 THEN 'webhook.created' WHEN b < 935 THEN 'webhook.paused'
         WHEN b < 940 THEN 'webhook.resumed' WHEN b < 970 THEN 'configuration.published'
         WHEN b < 985 THEN 'credential.created' WHEN b < 990 THEN 'credential.revoked'
         ELSE 'deliveries.pruned' END,
    CASE WHEN b BETWEEN 450 AND 749 THEN 'webhooks.delivery' WHEN b < 450 THEN 'credentials.client' ELSE '' END,
    CASE WHEN b BETWEEN 450 AND 749 THEN (g * 13)::text WHEN b < 450 THEN c::text ELSE '' END,
    CASE WHEN b BETWEEN 450 AND 749 THEN 'delivery msg_' || substr(md5(g::text), 1, 20)
         WHEN b < 450 THEN 'Client ' || c ELSE '' END,
    CASE WHEN b BETWEEN 750 AND 859 THEN NULL
         WHEN b < 450 OR b BETWEEN 860 AND 889 THEN envs.ids[1 + c %% %(envs)s]
         ELSE envs.ids[1 + g %% %(envs)s] END,
    ('10.' || (g %% 250) || '.' || (u * 5) || '.' || (c + 1))::inet,
    'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0',
    CASE WHEN b BETWEEN 450 AND 749 THEN json_build_object('delivery', g * 13, 'shown', 'payload')::jsonb
         WHEN b BETWEEN 860 AND 889 THEN '{"reason": "bad_secret", "in_window_so_far": 10}'::jsonb
         ELSE '{}'::jsonb END
FROM generate_series(%(first)s, %(last)s) AS g,
    LATERAL (SELECT (g::bigint * 7919) %% 1000 AS b, (g::bigint * 104729) %% %(users)s AS u,
                    (g::bigint * 15485863) %% %(clients)s AS c) AS k,
    envs
"""
