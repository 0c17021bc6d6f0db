"""The Overview's health queries over many stored attempts, raw and rolled up per hour, for the benchmark."""

from __future__ import annotations

import statistics
import time


def timed(run, repeat: int = 6) -> dict:
    """Median and max ms of `repeat` - 1 runs (the first warms caches)."""
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000)
    timings = timings[1:]
    return {"median_ms": round(statistics.median(timings), 1), "max_ms": round(max(timings), 1)}


def time_overview_page(environment) -> dict:
    """The Overview page of `environment` through Django, as its administrator loads it."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin")
    client = Client()
    client.force_login(admin)

    def page():
        if client.get(f"/e/{environment.slug}/").status_code != 200:
            raise RuntimeError("the Overview did not answer 200")

    return timed(page)


def measure(target_attempts: int) -> dict:
    """Seed one webhook with `target_attempts` attempts over ~6 days, then time the Overview (median of 5)."""
    from django.db import connection

    from benchmarks.history_pages import _seed
    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.health import summaries
    from webhooks.models import Attempt, AttemptHour, RollupMark, Webhook
    from webhooks.rollup import roll_up
    from webhooks.tests.factories import make_webhook

    environment = Environment.objects.filter(slug="bench-overview").first() or make_environment("bench-overview")
    webhook = Webhook.objects.filter(environment=environment).first() or make_webhook(
        environment, "http://127.0.0.1:9999/hooks", event_types=["patients.created", "patients.updated"]
    )
    have = Attempt.objects.filter(webhook=webhook).count()
    if have < target_attempts:
        _seed(connection, webhook, (target_attempts - have) // 2)
    attempts = Attempt.objects.filter(webhook=webhook).count()

    RollupMark.objects.all().delete()
    AttemptHour.objects.all().delete()
    raw = timed(lambda: summaries(environment), repeat=3)
    started = time.perf_counter()
    roll_up()
    rollup_ms = round((time.perf_counter() - started) * 1000, 1)
    rolled = timed(lambda: summaries(environment))
    return {
        "attempts": attempts,
        "raw_summaries": raw,
        "first_roll_up_ms": rollup_ms,
        "rolled_up_summaries": rolled,
        "overview_page": time_overview_page(environment),
    }
