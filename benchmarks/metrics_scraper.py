"""A scraper in its own process for the `metrics_cost` scenario: GET /metrics every INTERVAL seconds until
stdin closes: it prints "ready" after its first scrape, and at the end how many scrapes it made and their
median time in ms.

Its own process, like Prometheus, so a scrape's CPU and queries compete with the worker as a real one would,
and not for the bench process's interpreter, which also runs the receiver.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time

INTERVAL = float(os.environ.get("BENCH_SCRAPE_INTERVAL", "1.0"))


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_tools.settings")
    django.setup()
    from django.conf import settings
    from django.test import Client

    settings.METRICS_TOKEN = "bench"  # noqa: S105 - a token for this in-process client only
    settings.ALLOWED_HOSTS = ["*"]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    client, timings = Client(), []
    while not stop.is_set():
        started = time.perf_counter()
        answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer bench")
        if answer.status_code != 200:
            raise SystemExit(f"/metrics answered {answer.status_code}")
        timings.append((time.perf_counter() - started) * 1000)
        if len(timings) == 1:
            print("ready", flush=True)
        stop.wait(max(0.0, INTERVAL - (time.perf_counter() - started)))
    print(len(timings), round(statistics.median(timings), 1) if timings else 0.0, flush=True)


if __name__ == "__main__":
    main()
