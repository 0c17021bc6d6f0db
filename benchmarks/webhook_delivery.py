"""Webhook delivery: deliveries/s and event-to-receipt latency, side by side with a bare Celery task; history pages.

Usage:  .venv/bin/python benchmarks/webhook_delivery.py [--events 2000] [--rate 100] [--seconds 20]
                                                        [--concurrency 2] [--history-attempts 1000000]

- Throughput: N changes are committed with no worker running (each writes its
  event and delivery rows and queues a task), then a worker starts; deliveries/s
  is N over the time from the first receipt to the last. The bare baseline queues
  N tasks that only sign and POST the same payload, and is timed the same way.
- Latency: changes committed at --rate per second for --seconds against a
  running worker; latency is from the commit to the loopback receiver reading
  the request. The bare baseline measures from its enqueue.
- History: a webhook with --history-attempts attempts (seeded once with SQL) and
  the time to render its history pages through Django, first, deep (keyset),
  filtered and sorted.

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/integration_tools_bench) and Redis database 14
(BENCH_BROKER_URL). Everything talks to 127.0.0.1; every loop is bounded. Prints
figures; asserts nothing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.database import ensure_database  # noqa: E402 - needs the path above

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/integration_tools_bench")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")


def _environment() -> dict:
    from cryptography.fernet import Fernet

    key_file = BASE_DIR / "var" / "bench-fernet.key"
    key_file.parent.mkdir(exist_ok=True)
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
    # Production settings (DEBUG off), plain HTTP to a loopback receiver admitted by the allow-list.
    return {
        "DATABASE_URL": DATABASE_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "FIELD_ENCRYPTION_KEYS": key_file.read_text().strip(),
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "WEBHOOK_ALLOW_HTTP": "1",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(BASE_DIR / "var" / "bench-static"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="deliveries in each throughput run")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second in the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each latency run")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--history-attempts", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["delivery", "history"], help="run one part only")
    args = parser.parse_args()

    env = _environment()
    os.environ.update(env)
    ensure_database(DATABASE_URL)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env={**os.environ}, check=True)
    # Pages render as in production, with hashed static file names.
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"]
    subprocess.run(collect, cwd=BASE_DIR, env={**os.environ}, check=True)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_tools.settings")
    django.setup()

    from webhooks.tests.receiver import Receiver

    if args.only == "history":
        history_pages(args)
        return
    print(f"machine: {os.cpu_count()} cores; worker: prefork, concurrency {args.concurrency}; PostgreSQL; Redis")
    with Receiver() as receiver:
        ours = throughput_ours(receiver, args)
        bare = throughput_bare(receiver, args)
        print(f"throughput  integration tools {ours:8.1f} deliveries/s")
        print(f"throughput  bare celery task  {bare:8.1f} deliveries/s   (ours = {ours / bare:.0%} of bare)")
        ours_latency = latency_ours(receiver, args)
        bare_latency = latency_bare(receiver, args)
        for name, result in (("integration tools", ours_latency), ("bare celery task ", bare_latency)):
            print(
                f"latency     {name} at {result['rate']:.0f}/s: p50 {result['p50']:6.1f} ms"
                f"  p99 {result['p99']:6.1f} ms  max {result['max']:6.1f} ms"
                f"  ({result['n']} events, {result['lost']} not received)"
            )
    if args.only != "delivery":
        history_pages(args)


# --- Workers -----------------------------------------------------------------------------


def _start_worker(args) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "integration_tools", "worker", "-I", "benchmarks.bare_baseline"]
    command += ["--concurrency", str(args.concurrency), "--without-gossip", "--without-mingle", "--loglevel=WARNING"]
    command += ["--hostname", f"bench-{uuid.uuid4().hex[:6]}@%h"]
    return subprocess.Popen(command, cwd=BASE_DIR, env={**os.environ})


def _stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def _purge() -> None:
    from integration_tools.celery import app

    app.control.purge()


def _wait_for(receiver, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count and time.monotonic() < deadline:
        time.sleep(0.05)


# --- Our pipeline -------------------------------------------------------------------------


def _bench_webhook(receiver):
    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.models import Webhook
    from webhooks.tests.factories import make_webhook

    slug = "bench-delivery"
    environment = Environment.objects.filter(slug=slug).first() or make_environment(slug)
    Webhook.objects.filter(environment=environment).delete()
    return environment, make_webhook(environment, receiver.url, event_types=["patients.created"])


def _receipt_times(receiver) -> dict[str, float]:
    times = {}
    for request in receiver.requests:
        body = json.loads(request.body)
        times[body["data"]["id"]] = request.at
    return times


def throughput_ours(receiver, args) -> float:
    from environments.records import create_record

    _purge()
    environment, _ = _bench_webhook(receiver)
    receiver.requests.clear()
    for n in range(args.events):
        create_record(environment, "patients", {"first_name": f"T{n}", "last_name": "Bench"})
    worker = _start_worker(args)
    try:
        _wait_for(receiver, args.events, timeout=600)
    finally:
        _stop(worker)
    return _rate(receiver, args.events)


def _rate(receiver, expected: int) -> float:
    times = sorted(request.at for request in receiver.requests)
    if len(times) < expected:
        print(f"  warning: {expected - len(times)} of {expected} not received within the time limit")
    return (len(times) - 1) / (times[-1] - times[0])


def latency_ours(receiver, args) -> dict:
    from django.db import transaction

    from environments.records import create_record

    _purge()
    environment, _ = _bench_webhook(receiver)
    worker = _start_worker(args)
    try:
        _warm_up(receiver, lambda n: create_record(environment, "patients", {"first_name": "W", "last_name": f"{n}"}))
        committed: dict[str, float] = {}
        pending: list[float] = []

        def change(n: int) -> None:
            with transaction.atomic():
                # Registered first, so it runs first at commit: the moment the event exists.
                transaction.on_commit(lambda: pending.append(time.time()))
                record = create_record(environment, "patients", {"first_name": f"L{n}", "last_name": "Bench"})
            committed[str(record.id)] = pending.pop()

        count = _paced(change, args)
        _wait_for(receiver, count, timeout=60)
    finally:
        _stop(worker)
    return _latencies(committed, _receipt_times(receiver), args.rate)


def _warm_up(receiver, send) -> None:
    receiver.requests.clear()
    for n in range(20):
        send(n)
    _wait_for(receiver, 20, timeout=60)
    receiver.requests.clear()


def _paced(send, args) -> int:
    """Call send(n) at args.rate per second for args.seconds; returns how many were sent."""
    interval = 1 / args.rate
    total = int(args.rate * args.seconds)
    start = time.monotonic()
    for n in range(total):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(n)
    return total


def _latencies(sent: dict[str, float], received: dict[str, float], rate: float) -> dict:
    values = sorted((received[key] - at) * 1000 for key, at in sent.items() if key in received)
    return {
        "rate": rate,
        "n": len(values),
        "lost": len(sent) - len(values),
        "p50": statistics.median(values),
        "p99": values[max(0, int(len(values) * 0.99) - 1)],
        "max": values[-1],
    }


# --- The bare baseline --------------------------------------------------------------------


def _bare_payload(n: int, environment_slug: str) -> tuple[str, str]:
    record_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "patients.created",
            "timestamp": "2026-01-15T09:30:00.123456Z",
            "environment": environment_slug,
            "data": {
                "id": record_id,
                "data_type": "patients",
                "external_id": None,
                "created_at": "2026-01-15T09:30:00Z",
                "updated_at": "2026-01-15T09:30:00Z",
                "fields": {"first_name": f"B{n}", "last_name": "Bench"},
            },
        },
        separators=(",", ":"),
    )
    return record_id, body


_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def throughput_bare(receiver, args) -> float:
    from benchmarks.bare_baseline import sign_and_post

    _purge()
    receiver.requests.clear()
    for n in range(args.events):
        _, body = _bare_payload(n, "bench-delivery")
        sign_and_post.delay(receiver.url, f"msg_{uuid.uuid4().hex}", body, _KEY)
    worker = _start_worker(args)
    try:
        _wait_for(receiver, args.events, timeout=600)
    finally:
        _stop(worker)
    return _rate(receiver, args.events)


def latency_bare(receiver, args) -> dict:
    from benchmarks.bare_baseline import sign_and_post

    _purge()
    worker = _start_worker(args)
    sent: dict[str, float] = {}

    def send(n: int) -> None:
        record_id, body = _bare_payload(n, "bench-delivery")
        sent[record_id] = time.time()
        sign_and_post.delay(receiver.url, f"msg_{uuid.uuid4().hex}", body, _KEY)

    try:
        _warm_up(receiver, send)
        sent.clear()
        count = _paced(send, args)
        _wait_for(receiver, count, timeout=60)
    finally:
        _stop(worker)
    return _latencies(sent, _receipt_times(receiver), args.rate)


# --- History pages ------------------------------------------------------------------------


def history_pages(args) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.models import Attempt, Delivery, Webhook
    from webhooks.tests.factories import make_webhook

    environment = Environment.objects.filter(slug="bench-history").first() or make_environment("bench-history")
    webhook = Webhook.objects.filter(environment=environment).first() or make_webhook(
        environment, "http://127.0.0.1:9/hooks", event_types=["patients.created", "patients.updated"]
    )
    deliveries = args.history_attempts // 2
    have = Attempt.objects.filter(delivery__webhook=webhook).count()
    if have < args.history_attempts:
        started = time.monotonic()
        _seed(connection, webhook, deliveries)
        print(
            f"history     seeded {deliveries} deliveries / {2 * deliveries} attempts"
            f" in {time.monotonic() - started:.0f} s"
        )
    attempts = Attempt.objects.filter(delivery__webhook=webhook).count()

    User = get_user_model()
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser("bench-admin")
    client = Client()
    client.force_login(admin)
    base = f"/e/{environment.slug}/webhooks/{webhook.pk}/deliveries/"
    middle = Delivery.objects.filter(webhook=webhook).order_by("id").values_list("pk", flat=True)[deliveries // 2]
    from webhooks.history import _encode

    pages = {
        "first page": base,
        "page in the middle (keyset)": f"{base}?after={_encode(middle, middle)}",
        "failed only": f"{base}?status=failed",
        "event type filter": f"{base}?event_type=patients.updated",
        "status code search": f"{base}?q=503",
        "slowest first": f"{base}?sort=slowest",
        "environment history": f"/e/{environment.slug}/deliveries/",
    }
    print(f"history     {attempts} attempts stored; page of 50 rendered through Django (median of 5 / max)")
    for name, url in pages.items():
        timings = []
        for _ in range(6):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings = timings[1:]  # the first warms caches
        print(f"            {name:<30} {statistics.median(timings):7.1f} ms   max {max(timings):7.1f} ms")


def _seed(connection, webhook, deliveries: int) -> None:
    """Insert deliveries with two attempts each, straight in SQL (the ORM would take an hour)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_delivery (webhook_id, environment_id, message_id, event_count, event_types, is_test,
                status, created_at, body, attempt_count, last_attempt_at, last_status_code, last_error,
                last_duration_ms, delivered_at)
            SELECT %s, %s, 'msg_' || md5(%s || g), 1,
                CASE WHEN g %% 3 = 0 THEN 'patients.updated' ELSE 'patients.created' END, false,
                CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END,
                now() - (g || ' seconds')::interval, '{"id":"evt_seed"}', 2, now() - (g || ' seconds')::interval,
                CASE WHEN g %% 10 = 0 THEN 503 ELSE 200 END, '', (g::bigint * 7919) %% 900 + 5,
                CASE WHEN g %% 10 = 0 THEN NULL ELSE now() - (g || ' seconds')::interval END
            FROM generate_series(1, %s) AS g
            """,
            [webhook.pk, webhook.environment_id, uuid.uuid4().hex, deliveries],
        )
        cursor.execute(
            """
            INSERT INTO webhooks_attempt (delivery_id, number, trigger, started_at, duration_ms, url, request_headers,
                status_code, response_headers, response_body, error, error_detail, succeeded, triggered_by)
            SELECT d.id, n.n, CASE WHEN n.n = 1 THEN 'scheduled' ELSE 'retry' END, d.created_at, d.last_duration_ms,
                'http://127.0.0.1:9/hooks', '{"webhook-id": "seed"}',
                CASE WHEN n.n = 1 THEN 500 ELSE d.last_status_code END,
                '{}', 'seed', '', '', n.n = 2 AND d.last_status_code = 200, ''
            FROM webhooks_delivery d CROSS JOIN (VALUES (1), (2)) AS n(n)
            WHERE d.webhook_id = %s
            """,
            [webhook.pk],
        )
        cursor.execute("ANALYZE webhooks_delivery; ANALYZE webhooks_attempt;")


if __name__ == "__main__":
    main()
