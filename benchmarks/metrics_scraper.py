"""A scraper in its own process for the `metrics_cost` scenario: GET /metrics every INTERVAL seconds until
stdin closes: it prints "ready" after its first scrape, and at the end a JSON list of when each scrape
started (time.time()).

Its own process, like Prometheus, so a scrape's CPU and queries compete with the worker as a real one would,
and not for the bench process's interpreter, which also runs the receiver.
"""

from __future__ import annotations

import json
import os
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
    client, starts = Client(), []
    while not stop.is_set():
        starts.append(time.time())
        answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer bench")
        if answer.status_code != 200:
            raise SystemExit(f"/metrics answered {answer.status_code}")
        if len(starts) == 1:
            print("ready", flush=True)
        stop.wait(max(0.0, INTERVAL - (time.time() - starts[-1])))
    print(json.dumps(starts), flush=True)


if __name__ == "__main__":
    main()
