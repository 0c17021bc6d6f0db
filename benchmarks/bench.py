"""The benchmark: every figure the delivery engine promises, beside a bare Celery task measured in the same run.

Usage:  .venv/bin/python benchmarks/bench.py [--only NAME[,NAME…]] [--smoke] [--json FILE]
        make bench

Scenarios (their sizes with --smoke are tiny: the test suite runs it so that it cannot rot):
- backlog     N changes committed with no worker running, then a worker starts: deliveries/s from
              first to last receipt. Bare: N queued tasks that only sign and POST the same payload.
- latency     changes committed at 100/s for 20 s against a running worker: commit to receipt.
- isolation   a hanging and a dripping receiver (timeout 5 s) beside a healthy one, all subscribed,
              changes at 20/s from once the worker answers a ping: the healthy webhook's latency, and
              the longest attempt past its timeout.
- recovery    the receiver fails (503) for 2 minutes during a 500-event burst, then answers 200:
              seconds from its return to the last waiting delivery's receipt. Bare tasks do not retry.
- batching    a webhook taking 100 events per request, N changes queued: events/s.
- db_cut      the worker's database connections are terminated mid-burst: requests the receiver got
              that the history does not show (must be 0), and attempts the history shows twice.
- memory      worker RSS after 1,000 and after 100,000 deliveries.
- isolation_many  20 webhooks of one environment at hanging (10) and dripping (10) receivers, timeout 60 s,
              that environment's changes at 5/s from 5 s before and all along, beside a healthy webhook of
              another environment taking changes at 20/s for 60 s (one worker, as `isolation`): the healthy
              webhook's commit-to-receipt latency, and the most requests the bad receivers held open at
              once (the environment's cap, 64, should bound them).
- kill9       1,000 changes to a receiver answering in 20 ms, two workers; `kill -9` of one worker's process
              group mid-burst, twice (a worker restarted after each): deliveries lost, requests the receiver
              got that the history does not show (must be 0), attempts whose outcome is unknown.
- ordered     100 records x 20 changes each committed with no worker running, then two workers start:
              deliveries/s (first to last receipt) of a webhook ordered per record and of an unordered one,
              one after the other; and receipts of a record out of commit order (must be 0 per record).
- strict      a strictly ordered webhook, 500 changes committed with no worker running, then two workers, a
              receiver answering in 5 ms: deliveries/s beside 1 / mean round trip (a bare sequential POST
              loop to the same receiver over one kept-alive connection), and the most requests at once.
- history     delivery history pages (50 rows) through Django with 1 M and 10 M attempts stored.
- overview    the Overview's health queries and page with 1 M attempts, raw and rolled up per hour.
- partitions  attempts in monthly partitions: history pages and the Overview with 10 M attempts over 12 months
              (BENCH_PARTITION_ATTEMPTS sets another size); a month of 1 M attempts deleted in batches of
              5,000 against the same month dropped (detached concurrently, then dropped); a range of
              500,000 deliveries (a link and two attempts each) pruned row by row against dropped; and
              migrations 0017's and 0019's conversions of everything seeded, both ways.
- audit       the Audit page with 10 M audit events over a year (BENCH_AUDIT_ROWS sets another size): first
              page, a page in the middle, each filter (actor, action, environment, a week) and a Program
              Director's view; the CSV export of one actor's year (first byte, first row, rows/s) and of
              everything (its rate over the first 1 M rows).
- api         token endpoint and Data API reads, requests/s against gunicorn.
- pgbouncer   the backlog scenario three times over with the worker's database connections direct and three
              times through Debian's PgBouncer in transaction mode (default_pool_size 20, as the README
              recommends; DATABASE_POOLER=pgbouncer), rounds alternated: deliveries/s of each (best round).
- oauth       the backlog scenario twice over, for a webhook whose receiver demands an OAuth 2.0 token
              (client_secret_basic, from a real Authlib token endpoint; the receiver checks every token)
              and for the same webhook without: deliveries/s of each (best of 2 rounds, alternated), and
              the token fetches (one per expiry: 1).
- api_writes  Data API creates/s, 8 concurrent writers against gunicorn (2 workers), with a webhook subscribed
              to the created events (no worker runs) and without; beside the same measurement of the checkout
              at BENCH_BASELINE_TREE (its own gunicorn and database), alternating baseline / this tree twice.
- feed        the events feed against gunicorn: N events read by cursor (events/s, pages of the most the
              endpoint allows), and a long-poll's wake-up after a commit (30 trials).
- embedded    `make run` itself (scripts/run: SQLite, the embedded broker, the supervised worker and beat):
              8 producers write 2,000 records through the Data API, half while the worker keeps pace, half
              while it is frozen; deliveries/s draining that backlog and live, worker exits, lost and
              duplicated deliveries, and "database is locked" errors on its console.

Each run creates its own PostgreSQL databases (BENCH_DATABASE_PREFIX..., dropped at the end) and uses Redis
database 14 (BENCH_BROKER_URL).
Everything talks to 127.0.0.1 and every loop is bounded. Prints one table and writes
var/bench/latest.json (or --json FILE). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.database import drop_database, ensure_database  # noqa: E402 - needs the path above

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
# The run's databases are named <prefix>_<time>_<pid>[_<suffix>], and dropped at the end.
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "integration_tools_bench")
# Another checkout to measure beside this one where a bar compares with "today's" (api_writes): a path.
BASELINE_TREE = os.environ.get("BENCH_BASELINE_TREE")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
SCENARIOS = [
    "backlog",
    "latency",
    "isolation",
    "recovery",
    "batching",
    "db_cut",
    "memory",
    "isolation_many",
    "kill9",
    "ordered",
    "strict",
    "history",
    "overview",
    "partitions",
    "audit",
    "metrics",
    "metrics_cost",
    "receivers",
    "api",
    "api_writes",
    "feed",
    "embedded",
    "oauth",
    "pgbouncer",
]

FULL = {
    "events": 2000,
    "rate": 100.0,
    "seconds": 20.0,
    "isolation_rate": 20.0,
    "isolation_seconds": 20.0,
    "bad_timeout": 5,
    "outage": 120.0,
    "burst": 500,
    "batch_events": 5000,
    "cut_events": 1000,
    "memory_deliveries": 100_000,
    "history": [1_000_000, 10_000_000],
    "overview": 1_000_000,
    "partitions": (int(os.environ.get("BENCH_PARTITION_ATTEMPTS", 10_000_000)), 1_000_000, True),
    "audit": int(os.environ.get("BENCH_AUDIT_ROWS", 10_000_000)),
    "metrics": (1_000, 1_000_000),
    "metrics_cost_rounds": 3,
    "receiver_renders": 20_000,
    "erase_deliveries": 100_000,
    "api_seconds": 10.0,
    "writes_seconds": 10.0,
    "feed_events": 100_000,
    "feed_trials": 30,
    "feed_idle_wait": 30.0,
    "embedded_events": 2000,
    "embedded_bursts": 5,
    "many_bad": 20,
    "many_timeout": 60,
    "many_seconds": 60.0,
    "many_rate": 20.0,
    "many_bad_rate": 5.0,
    "many_head_start": 5.0,
    "kill_events": 1000,
    "kill_wait": 180.0,
    "ordered_records": 100,
    "ordered_changes": 20,
    "strict_events": 500,
    "round_trips": 500,
}
SMOKE = {
    "events": 40,
    "rate": 20.0,
    "seconds": 1.0,
    "isolation_rate": 10.0,
    "isolation_seconds": 1.0,
    "bad_timeout": 1,
    "outage": 2.0,
    "burst": 10,
    "batch_events": 200,
    "cut_events": 40,
    "memory_deliveries": 200,
    "history": [2_000],
    "overview": 2_000,
    "partitions": (2_000, 2_000, True),
    "audit": 20_000,
    "metrics": (20, 2_000),
    "metrics_cost_rounds": 1,
    "receiver_renders": 200,
    "erase_deliveries": 1_000,
    "api_seconds": 1.0,
    "writes_seconds": 2.0,
    "feed_events": 5_000,
    "feed_trials": 5,
    "feed_idle_wait": 0.0,
    "embedded_events": 80,
    "embedded_bursts": 2,
    "many_bad": 20,
    "many_timeout": 2,
    "many_seconds": 3.0,
    "many_rate": 10.0,
    "many_bad_rate": 2.0,
    "many_head_start": 1.0,
    "kill_events": 40,
    "kill_wait": 60.0,
    "ordered_records": 5,
    "ordered_changes": 4,
    "strict_events": 20,
    "round_trips": 20,
}


def production_env(database_url: str, broker_url: str = BROKER_URL) -> dict[str, str]:
    """Production settings (DEBUG off), with plain HTTP to loopback receivers admitted by the allow-list."""
    from cryptography.fernet import Fernet

    key_file = BASE_DIR / "var" / "bench-fernet.key"
    key_file.parent.mkdir(exist_ok=True)
    if not key_file.exists():
        key_file.write_text(Fernet.generate_key().decode())
    return {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-" + "x" * 50,
        "FIELD_ENCRYPTION_KEYS": key_file.read_text().strip(),
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "WEBHOOK_ALLOW_HTTP": "1",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(BASE_DIR / "var" / "bench-static"),
        # The page figures are of an Admin past sign-in: with the production default (admins) the bench's
        # Admin, who has no authenticator, would be sent to enrol one. The session gate itself still runs.
        "MFA_REQUIRED": "off",
    }


# --- Workers ----------------------------------------------------------------------------


class Worker:
    """A Celery worker in its own process group; `pool` None means the project's settings."""

    def __init__(self, *, pool: str | None = None, concurrency: int | None = None, beat: bool = False, env=None):
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "integration_tools",
            "worker",
            "-I",
            "benchmarks.bare_baseline",
        ]
        command += ["--without-gossip", "--without-mingle", "--loglevel=WARNING"]
        self.hostname = f"bench-{uuid.uuid4().hex[:6]}@{platform.node()}"
        command += ["--hostname", self.hostname]
        if pool:
            command += ["--pool", pool]
        if concurrency:
            command += ["--concurrency", str(concurrency)]
        if beat:
            command += ["--beat", "--schedule", str(Path(tempfile.mkdtemp()) / "beat")]
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            # The worker's database connections carry their own name, so db_cut can find them.
            # A beat started after a killed one takes the beat lease over in seconds (kill9), not 40 s.
            env={**os.environ, "PGAPPNAME": "bench-worker", "BEAT_LEASE_SECONDS": "3", **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Return once the worker answers a ping: it has booted and consumes tasks."""
        from integration_tools.celery import app

        if not wait_for(lambda: app.control.ping(destination=[self.hostname], timeout=0.5), timeout, interval=0.1):
            raise RuntimeError(f"worker {self.hostname} did not start within {timeout} s:\n{self.log_text()[-2000:]}")

    def rss_kb(self) -> int:
        """Resident memory of the worker and its pool children."""
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with contextlib.suppress(FileNotFoundError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def purge() -> None:
    from integration_tools.celery import app

    app.control.purge()


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


# --- Our side and the bare side ----------------------------------------------------------

_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def bench_environment(slug: str):
    from environments.models import Environment
    from environments.tests.factories import make_environment

    return Environment.objects.filter(slug=slug).first() or make_environment(slug)


def fresh_webhook(environment, url: str, *, event_types=("patients.created",), **options):
    from webhooks.models import Webhook
    from webhooks.tests.factories import make_webhook

    Webhook.objects.filter(environment=environment, name=options.get("name", "bench")).delete()
    options.setdefault("name", "bench")
    return make_webhook(environment, url, event_types=list(event_types), **options)


def change(environment, n: int, label: str = "T"):
    from environments.records import create_record

    return create_record(environment, "patients", {"first_name": f"{label}{n}", "last_name": "Bench"})


def bare_payload(n: int) -> tuple[str, str]:
    record_id = str(uuid.uuid4())
    body = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "patients.created",
            "timestamp": "2026-01-15T09:30:00.123456Z",
            "environment": "bench",
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


def bare_send(url: str, n: int) -> str:
    from benchmarks.bare_baseline import sign_and_post

    record_id, body = bare_payload(n)
    sign_and_post.delay(url, f"msg_{uuid.uuid4().hex}", body, _KEY)
    return record_id


def rate_of(times: list[float]) -> float:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def percentiles(values: list[float]) -> dict:
    values = sorted(values)
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": round(statistics.median(values), 2),
        "p99": round(values[max(0, int(len(values) * 0.99) - 1)], 2),
        "max": round(values[-1], 2),
        "n": len(values),
    }


def receipt_times(receiver) -> dict[str, float]:
    times = {}
    for request in list(receiver.requests):
        body = json.loads(request.body)
        for event in body.get("events", [body]):
            times[event["data"]["id"]] = request.at
    return times


def paced(send, rate: float, seconds: float) -> int:
    """Call send(n) at `rate` per second for `seconds`; returns how many were sent."""
    total = max(int(rate * seconds), 1)
    start = time.monotonic()
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(n)
    return total


def committed_at(environment, n: int, label: str) -> tuple[str, float]:
    """Make one change; return its record id and the moment its transaction committed."""
    from django.db import transaction

    moment: list[float] = []
    with transaction.atomic():
        transaction.on_commit(lambda: moment.append(time.time()))
        record = change(environment, n, label)
    return str(record.id), moment[0]


BARE_POOLS = [("prefork", 2), ("threads", 16)]


# --- Scenarios ----------------------------------------------------------------------------


def _backlog_rate(environment, receiver, size, label: str, setup=None, beside=None, env=None) -> float:
    """Deliveries/s of one webhook draining `size["events"]` changes committed with no worker running;
    `beside`, a context manager, runs from before the worker starts to after the drain; `env`, the worker's
    environment over the run's."""
    webhook = fresh_webhook(environment, receiver.url, name=f"bench-{label}")
    if setup is not None:
        setup(webhook)
    purge()
    receiver.requests.clear()
    for n in range(size["events"]):
        change(environment, n, label)
    with beside or contextlib.nullcontext(), Worker(env=env):
        wait_for(lambda: len(receiver.requests) >= size["events"], timeout=600)
    return rate_of([request.at for request in receiver.requests])


def scenario_pgbouncer(receiver, size) -> dict:
    from django.db import connection

    from integration_tools.tests.pgbouncer_server import PgBouncer

    environment = bench_environment("bench-pooler")
    direct, pooled = [], []
    with PgBouncer(connection.settings_dict, pool_size=20) as pooler:
        through = pooler.env_for(connection.settings_dict["NAME"])
        for _ in range(3):
            direct.append(_backlog_rate(environment, receiver, size, "direct"))
            pooled.append(_backlog_rate(environment, receiver, size, "pooled", env=through))
        servers = len(pooler.admin("SHOW SERVERS") or [])
    ours, without = max(pooled), max(direct)
    return {
        "pgbouncer_per_s": round(ours, 1),
        "direct_per_s": round(without, 1),
        "rounds": {"direct": [round(r, 1) for r in direct], "pgbouncer": [round(r, 1) for r in pooled]},
        "server_connections_after": servers,
        "ratio": round(ours / without, 2) if without else None,
        "bar": "pgbouncer >= 0.9 x direct",
        "holds": ours >= 0.9 * without,
    }


def scenario_oauth(receiver, size) -> dict:
    from webhooks.receiver_auth import ReceiverAuthFields, set_receiver_auth
    from webhooks.tests.authorization_server import AuthorizationServer
    from webhooks.tests.receiver import Receiver

    plain_env, oauth_env = bench_environment("bench-plain"), bench_environment("bench-oauth")
    with AuthorizationServer() as server, Receiver(judge=server.protects) as protected:
        server.register("bench", secret="bench-secret")  # noqa: S106 - a throwaway test server

        def with_oauth(webhook) -> None:
            fields = ReceiverAuthFields("oauth2-secret", server.token_url, "bench", "bench-secret")
            set_receiver_auth(webhook, fields)

        plain, oauth = [], []
        for _ in range(2):
            plain.append(_backlog_rate(plain_env, receiver, size, "plain"))
            oauth.append(_backlog_rate(oauth_env, protected, size, "oauth", with_oauth))
        fetches = server.issued
    ours, without = max(oauth), max(plain)
    return {
        "oauth_per_s": round(ours, 1),
        "plain_per_s": round(without, 1),
        "token_fetches": fetches,
        "ratio": round(ours / without, 2) if without else None,
        "bar": "oauth >= 0.9 x plain, 1 token fetch per expiry",
        "holds": ours >= 0.9 * without and fetches == 2,  # one per webhook made (each round makes a new one)
    }


def scenario_backlog(receiver, size) -> dict:
    environment = bench_environment("bench")
    fresh_webhook(environment, receiver.url)
    purge()
    receiver.requests.clear()
    for n in range(size["events"]):
        change(environment, n)
    with Worker():
        wait_for(lambda: len(receiver.requests) >= size["events"], timeout=600)
    ours = rate_of([request.at for request in receiver.requests])
    bare = {}
    for pool, concurrency in BARE_POOLS:
        purge()
        receiver.requests.clear()
        for n in range(size["events"]):
            bare_send(receiver.url, n)
        with Worker(pool=pool, concurrency=concurrency):
            wait_for(lambda: len(receiver.requests) >= size["events"], timeout=600)
        bare[f"{pool}-{concurrency}"] = round(rate_of([request.at for request in receiver.requests]), 1)
    best = max(bare.values())
    return {
        "ours_per_s": round(ours, 1),
        "bare_per_s": best,
        "bare_by_pool": bare,
        "ratio": round(ours / best, 2) if best else None,
        "bar": "ours >= 1.0 x bare",
        "holds": ours >= best,
    }


LATENCY_ROUNDS = 3


def _latency_round(receiver, size, send, pool=None, concurrency=None) -> list[float]:
    """One round: a fresh worker, a warm-up, then changes at the rate; returns commit-to-receipt latencies (ms)."""
    purge()
    with Worker(pool=pool, concurrency=concurrency):
        receiver.requests.clear()
        for n in range(20):
            send(n, {})
        wait_for(lambda: len(receiver.requests) >= 20, timeout=60)
        receiver.requests.clear()
        sent: dict[str, float] = {}
        count = paced(lambda n: send(n, sent), size["rate"], size["seconds"] / LATENCY_ROUNDS)
        wait_for(lambda: len(receiver.requests) >= count, timeout=60)
    received = receipt_times(receiver)
    return [(received[key] - at) * 1000 for key, at in sent.items() if key in received] + [
        float("inf") for key in sent if key not in received
    ]


def scenario_latency(receiver, size) -> dict:
    """Rounds alternate between ours and the bare task, so a noisy machine weighs on both alike."""
    environment = bench_environment("bench")
    fresh_webhook(environment, receiver.url)

    def send_ours(n, sent):
        record_id, at = committed_at(environment, n, "L")
        sent[record_id] = at

    def send_bare(n, sent):
        at = time.time()
        sent[bare_send(receiver.url, n)] = at

    samples: dict[str, list[float]] = {"ours": []} | {f"{pool}-{c}": [] for pool, c in BARE_POOLS}
    for _ in range(LATENCY_ROUNDS):
        samples["ours"] += _latency_round(receiver, size, send_ours)
        for pool, concurrency in BARE_POOLS:
            samples[f"{pool}-{concurrency}"] += _latency_round(receiver, size, send_bare, pool, concurrency)

    def figures(values):
        lost = sum(1 for value in values if value == float("inf"))
        result = percentiles([value for value in values if value != float("inf")])
        result["lost"] = lost
        return result

    ours = figures(samples.pop("ours"))
    bare = {name: figures(values) for name, values in samples.items()}
    best = min(bare.values(), key=lambda each: each["p50"] or 1e9)
    return {
        "rate": size["rate"],
        "rounds": LATENCY_ROUNDS,
        "ours_ms": ours,
        "bare_ms": best,
        "bare_by_pool": bare,
        "p50_ratio": round(ours["p50"] / best["p50"], 2),
        "p99_ratio": round(ours["p99"] / best["p99"], 2),
        "bar": "p50 <= 1.5 x bare, p99 <= 2 x bare",
        "holds": ours["p50"] <= 1.5 * best["p50"] and ours["p99"] <= 2 * best["p99"],
    }


def scenario_isolation(receiver, size) -> dict:
    from webhooks.models import Attempt
    from webhooks.tests.misbehaving import Misbehaving

    environment = bench_environment("bench-isolation")
    timeout = size["bad_timeout"]
    with Misbehaving("hang") as hanging, Misbehaving("drip", interval=0.5) as dripping:
        fresh_webhook(environment, receiver.url, name="healthy")
        hang_hook = fresh_webhook(environment, hanging.url, name="hangs", timeout_seconds=timeout)
        drip_hook = fresh_webhook(environment, dripping.url, name="drips", timeout_seconds=timeout)
        purge()
        # Both sides are timed from a running worker: the bar is about a receiver's faults, not a cold start.
        with Worker() as worker:
            worker.wait_ready()
            receiver.requests.clear()
            sent: dict[str, float] = {}

            def send(n):
                record_id, at = committed_at(environment, n, "I")
                sent[record_id] = at

            count = paced(send, size["isolation_rate"], size["isolation_seconds"])
            wait_for(lambda: len(receiver.requests) >= count, timeout=120)
            time.sleep(timeout + 1)  # let attempts in flight to the bad receivers end
        received = receipt_times(receiver)
        ours = percentiles([(received[key] - at) * 1000 for key, at in sent.items() if key in received])
        ours["lost"] = len(sent) - ours["n"]
        bad = Attempt.objects.filter(delivery__webhook__in=[hang_hook, drip_hook])
        longest = max(bad.values_list("duration_ms", flat=True), default=0)
        # The bare task against the same three receivers, one task per receiver per change.
        purge()
        bare_worker = Worker(pool="threads", concurrency=16)
        try:
            bare_worker.wait_ready()
            receiver.requests.clear()
            bare_sent: dict[str, float] = {}

            def send_bare(n):
                at = time.time()
                bare_sent[bare_send(receiver.url, n)] = at
                bare_send(hanging.url, n)
                bare_send(dripping.url, n)

            count = paced(send_bare, size["isolation_rate"], size["isolation_seconds"])
            wait_for(lambda: len(receiver.requests) >= count, timeout=30)
        finally:
            bare_worker.stop()
    received = receipt_times(receiver)
    bare = percentiles([(received[key] - at) * 1000 for key, at in bare_sent.items() if key in received])
    bare["lost"] = len(bare_sent) - bare["n"]
    past_timeout = (longest - timeout * 1000) / 1000
    return {
        "healthy_ms": ours,
        "bare_healthy_ms": bare,
        "longest_bad_attempt_s": round(longest / 1000, 2),
        "timeout_s": timeout,
        "bad_attempts": bad.count(),
        "bar": "healthy p99 < 1 s; no attempt > timeout + 1 s",
        "holds": ours["lost"] == 0 and ours["p99"] < 1000 and past_timeout <= 1,
    }


def scenario_recovery(receiver, size) -> dict:
    from webhooks.models import Delivery

    environment = bench_environment("bench-recovery")
    webhook = fresh_webhook(environment, receiver.url)
    purge()
    receiver.requests.clear()
    receiver.default.status = 503
    try:
        with Worker(beat=True):
            for n in range(size["burst"]):
                change(environment, n, "R")
            wait_for(lambda: len(receiver.requests) >= size["burst"], timeout=60)
            time.sleep(size["outage"])
            receiver.default.status = 200
            back = time.time()
            done = wait_for(
                lambda: not Delivery.objects.filter(webhook=webhook, status__in=Delivery.WAITING).exists(),
                timeout=max(120, size["outage"] * 3),
                interval=0.2,
            )
    finally:
        receiver.default.status = 200
    arrivals = [request.at for request in receiver.requests if request.at >= back]
    last = max(arrivals, default=back)
    waited = round(last - back, 2)
    return {
        "outage_s": size["outage"],
        "burst": size["burst"],
        "all_delivered": done,
        "seconds_to_last_after_return": waited,
        "bare": "no retries: every event sent during the outage is lost",
        "bar": "every waiting delivery within 30 s of the return",
        "holds": done and waited <= 30,
    }


def scenario_batching(receiver, size) -> dict:
    environment = bench_environment("bench-batching")
    fresh_webhook(environment, receiver.url, max_events_per_request=100)
    purge()
    receiver.requests.clear()
    for n in range(size["batch_events"]):
        change(environment, n, "B")
    with Worker():
        wait_for(lambda: len(receipt_times(receiver)) >= size["batch_events"], timeout=600)
    requests = sorted(receiver.requests, key=lambda request: request.at)
    events = len(receipt_times(receiver))
    # Events after the first request, over the time from the first receipt to the last.
    first = len(json.loads(requests[0].body).get("events", [None])) if requests else 0
    span = requests[-1].at - requests[0].at if len(requests) > 1 else 0.0
    per_s = (events - first) / span if span else 0.0
    times = [request.at for request in requests]
    return {"events": events, "requests": len(times), "ours_events_per_s": round(per_s, 1)}


def scenario_db_cut(receiver, size, database_url: str) -> dict:
    import psycopg

    from webhooks.models import Attempt

    environment = bench_environment("bench-cut")
    webhook = fresh_webhook(environment, receiver.url)
    purge()
    receiver.requests.clear()
    name = database_url.rsplit("/", 1)[1]
    with Worker():
        for n in range(size["cut_events"]):
            change(environment, n, "C")
            if n == size["cut_events"] // 2:
                with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
                    cut = admin.execute(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = %s AND application_name = 'bench-worker'",
                        [name],
                    ).fetchone()[0]
        wait_for(lambda: len({r.headers["webhook-id"] for r in receiver.requests}) >= size["cut_events"], timeout=120)
        time.sleep(2)
    received: dict[str, int] = {}
    for request in receiver.requests:
        received[request.headers["webhook-id"]] = received.get(request.headers["webhook-id"], 0) + 1
    recorded: dict[str, int] = {}
    for message_id in Attempt.objects.filter(delivery__webhook=webhook).values_list("delivery__message_id", flat=True):
        recorded[message_id] = recorded.get(message_id, 0) + 1
    unrecorded = sum(max(0, count - recorded.get(message_id, 0)) for message_id, count in received.items())
    # Attempts in the history that no request matches: a batch written twice after a broken connection.
    recorded_twice = sum(max(0, count - received.get(message_id, 0)) for message_id, count in recorded.items())
    return {
        "connections_terminated": cut,
        "requests_received": sum(received.values()),
        "unrecorded": unrecorded,
        "recorded_twice": recorded_twice,
        "bar": "every request the receiver got is in the history",
        "holds": unrecorded == 0,
    }


def scenario_memory(receiver, size) -> dict:
    from django.db import transaction

    environment = bench_environment("bench-memory")
    fresh_webhook(environment, receiver.url)
    purge()
    total = size["memory_deliveries"]
    warm = min(1000, total // 10)
    with Worker() as worker:
        receiver.requests.clear()
        for n in range(warm):
            change(environment, n, "M")
        wait_for(lambda: len(receiver.requests) >= warm, timeout=120)
        before = worker.rss_kb()
        sent = warm
        while sent < total:  # in chunks, so the backlog (and the broker) stays small
            with transaction.atomic():  # one commit per chunk: the point is the worker, not the writer
                for n in range(sent, min(sent + 2000, total)):
                    change(environment, n, "M")
            sent = min(sent + 2000, total)
            wait_for(lambda sent=sent: len(receiver.requests) >= sent, timeout=600)
        after = worker.rss_kb()
    growth = (after - before) / before if before else 0.0
    return {
        "deliveries": total,
        "rss_mb_before": round(before / 1024, 1),
        "rss_mb_after": round(after / 1024, 1),
        "growth": round(growth, 3),
        "bar": "growth < 20 %",
        "holds": growth < 0.2,
    }


class Concurrency:
    """How many requests a receiver is serving at once, and the most it ever served at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def count_concurrency(receiver) -> Concurrency:
    """Count the requests `receiver` serves at once: from the request's headers read to its answer written
    (the answer is flushed just after, so a sender waiting for it cannot overlap the count by mistake)."""
    counter = Concurrency()
    base = receiver.server.RequestHandlerClass

    class Counted(base):
        def do_POST(self):  # noqa: N802 - the stdlib's name
            counter.enter()
            try:
                super().do_POST()
            finally:
                counter.leave()

    receiver.server.RequestHandlerClass = Counted
    return counter


def open_counting(behaviour: str, **kwargs):
    """A misbehaving receiver (webhooks/tests/misbehaving.py) that counts the connections it holds open: each
    holds one request, until the sender gives up and closes it. A hanging one notices the close within 0.2 s;
    a dripping one here watches for it between drips (its sends alone would notice it one or two drips late,
    and count requests the sender has already given up)."""
    import select

    from webhooks.tests.misbehaving import Misbehaving

    class OpenCounting(Misbehaving):
        def __init__(self) -> None:
            super().__init__(behaviour, **kwargs)
            self.open = Concurrency()

        def _serve(self, conn) -> None:
            self.open.enter()
            try:
                if self.behaviour == "drip":
                    self._drip(conn)
                else:
                    super()._serve(conn)
            finally:
                self.open.leave()

        def _drip(self, conn) -> None:
            with contextlib.suppress(OSError), conn:
                conn.settimeout(1)
                with contextlib.suppress(TimeoutError):
                    conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                next_drip = time.monotonic() + self.interval
                while not self._stop.is_set():
                    readable, _, _ = select.select([conn], [], [], 0.05)
                    if readable and not conn.recv(65536):
                        return  # the sender closed: it gave up on this request
                    if time.monotonic() >= next_drip:
                        conn.sendall(b"X")
                        next_drip += self.interval

    return OpenCounting()


def scenario_isolation_many(receiver, size) -> dict:
    """The issue-21 drill: one careless (or hostile) user's many bad webhooks beside someone else's healthy one.
    One worker with the project's settings, as `isolation`; the bad environment keeps making changes all
    along, so its webhooks always have work waiting behind their caps."""
    from django.conf import settings
    from django.db import connection

    from webhooks.models import Attempt, Webhook

    timeout = size["many_timeout"]
    bad_environment = bench_environment("bench-many-bad")
    good_environment = bench_environment("bench-many-good")
    hanging = open_counting("hang")
    dripping = open_counting("drip", interval=0.5)
    Webhook.objects.filter(environment=bad_environment).delete()
    bad_hooks = [
        fresh_webhook(
            bad_environment,
            f"{(hanging if n % 2 == 0 else dripping).url}/{n}",
            name=f"bad-{n}",
            timeout_seconds=timeout,
        )
        for n in range(size["many_bad"])
    ]
    fresh_webhook(good_environment, receiver.url, name="healthy")
    purge()
    receiver.requests.clear()
    sent: dict[str, float] = {}
    bad_sent: list[int] = []
    peak_open = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak_open
        while not sampling.wait(0.05):
            peak_open = max(peak_open, hanging.open.now + dripping.open.now)

    def send_bad() -> None:
        try:
            seconds = size["many_head_start"] + size["many_seconds"]
            bad_sent.append(paced(lambda n: change(bad_environment, n, "X"), size["many_bad_rate"], seconds))
        finally:
            connection.close()  # this thread's own connection

    with Worker() as worker:
        with hanging, dripping:
            worker.wait_ready()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            bad_writer = threading.Thread(target=send_bad, daemon=True)
            bad_writer.start()
            time.sleep(size["many_head_start"])  # the bad receivers take their fill first
            bad_open_at_start = hanging.open.now + dripping.open.now

            def send(n):
                record_id, at = committed_at(good_environment, n, "H")
                sent[record_id] = at

            count = paced(send, size["many_rate"], size["many_seconds"])
            wait_for(lambda: len(receipt_times(receiver)) >= count, timeout=60)
            bad_writer.join(timeout=size["many_head_start"] + 30)
            sampling.set()
            sampler.join()
        # The bad receivers are gone: what was waiting on them ends now, and the worker stops promptly.
        time.sleep(2)
    received = receipt_times(receiver)
    healthy = percentiles([(received[key] - at) * 1000 for key, at in sent.items() if key in received])
    healthy["lost"] = len(sent) - healthy["n"]
    bad = Attempt.objects.filter(delivery__webhook__in=bad_hooks)
    bad_attempts = bad.count()
    longest = max(bad.values_list("duration_ms", flat=True), default=0)
    Webhook.objects.filter(pk__in=[hook.pk for hook in bad_hooks]).delete()  # nothing of theirs for later scenarios
    cap = size["many_bad"] * settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK
    bound = min(cap, settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT)
    return {
        "healthy_ms": healthy,
        "bad_webhooks": size["many_bad"],
        "timeout_s": timeout,
        "bad_changes": bad_sent[0] if bad_sent else None,
        "bad_open_at_most": peak_open,
        "bad_open_peak_hanging": hanging.open.peak,
        "bad_open_peak_dripping": dripping.open.peak,
        "bad_open_when_healthy_started": bad_open_at_start,
        "bad_open_bound": bound,
        "bad_connections": hanging.connections + dripping.connections,
        "bad_attempts": bad_attempts,
        "longest_bad_attempt_s": round(longest / 1000, 2),
        "bar": "healthy p99 < 1 s, none lost",
        "holds": healthy["lost"] == 0 and healthy["p99"] is not None and healthy["p99"] < 1000,
    }


def _kill(worker: Worker) -> None:
    """kill -9 of the worker's whole process group: no shutdown, no acknowledgement, nothing recorded."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
    worker.log.close()


def scenario_kill9(receiver, size) -> dict:
    """A worker killed mid-send, twice. Short lease and sweep (the worker env) so that what the killed worker
    held comes back in seconds: the attempt it was making is recorded by the sweeper (outcome unknown), the
    delivery sent again as a second attempt."""
    from webhooks.models import Attempt, Delivery
    from webhooks.tests.receiver import Answer, Receiver

    worker_env = {
        "WEBHOOK_LEASE_MARGIN_SECONDS": "3",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "WEBHOOK_SWEEP_SECONDS": "1",
        "WEBHOOK_REQUEUE_AFTER_SECONDS": "3",
    }
    total = size["kill_events"]
    environment = bench_environment("bench-kill9")
    with Receiver(default=Answer(delay=0.02)) as slow:
        # A killed worker's connections are reset mid-request: expected here, not worth a traceback each.
        slow.server.handle_error = lambda request, client_address: None
        webhook = fresh_webhook(environment, slow.url, timeout_seconds=2)
        purge()
        record_ids: list[str] = []
        kills_at = [total // 3, 2 * total // 3]
        kills: list[dict] = []
        workers = [Worker(beat=True, env=worker_env), Worker(env=worker_env)]
        try:
            for worker in workers:
                worker.wait_ready()

            def received_ids() -> set[str]:
                return {json.loads(request.body)["data"]["id"] for request in list(slow.requests)}

            def maybe_kill() -> None:
                if len(kills) < len(kills_at) and len(received_ids()) >= kills_at[len(kills)]:
                    index = 1 - len(kills) % 2  # first the worker without beat, then the one with it
                    beat = index == 0
                    _kill(workers[index])
                    marked = Delivery.objects.filter(webhook=webhook, sending_since__isnull=False).count()
                    kills.append({"after_receipts": len(received_ids()), "marked_sending_after_kill": marked})
                    workers[index] = Worker(beat=beat, env=worker_env)
                    workers[index].wait_ready()

            for n in range(total):
                record_ids.append(str(change(environment, n, "K").id))
                maybe_kill()
            wait_for(lambda: (maybe_kill(), len(kills) == len(kills_at))[1], timeout=60, interval=0.02)
            done = wait_for(
                lambda: not Delivery.objects.filter(webhook=webhook).exclude(status=Delivery.Status.SUCCEEDED).exists(),
                timeout=size["kill_wait"],
                interval=0.2,
            )
            time.sleep(1)  # anything still on its way arrives
        finally:
            for worker in workers:
                if worker.process.poll() is None:
                    worker.stop()
        requests = list(slow.requests)
    received: collections.Counter = collections.Counter(request.headers["webhook-id"] for request in requests)
    recorded: collections.Counter = collections.Counter(
        Attempt.objects.filter(delivery__webhook=webhook).values_list("delivery__message_id", flat=True)
    )
    unrecorded = sum(max(0, count - recorded.get(message_id, 0)) for message_id, count in received.items())
    without_request = sum(max(0, count - received.get(message_id, 0)) for message_id, count in recorded.items())
    unknown = Attempt.objects.filter(delivery__webhook=webhook, error=Attempt.OUTCOME_UNKNOWN).count()
    events = collections.Counter(json.loads(request.body)["data"]["id"] for request in requests)
    not_succeeded = Delivery.objects.filter(webhook=webhook).exclude(status=Delivery.Status.SUCCEEDED).count()
    never_received = len(set(record_ids) - set(events))
    return {
        "events": total,
        "kills": kills,
        "all_succeeded": done,
        "deliveries_not_succeeded": not_succeeded,
        "events_never_received": never_received,
        "lost": max(not_succeeded, never_received),
        "requests_received": len(requests),
        "events_received_twice": sum(1 for times in events.values() if times > 1),
        "unrecorded": unrecorded,
        "attempts": sum(recorded.values()),
        "outcome_unknown": unknown,
        "attempts_without_request": without_request,
        "bar": "0 lost, 0 requests the history does not show",
        "holds": done and not_succeeded == 0 and never_received == 0 and unrecorded == 0,
    }


def _out_of_order(requests) -> tuple[int, int]:
    """Receipts of a record older than one of its receipts before them (in the order they reached the
    receiver), and receipts of an event already received."""
    newest: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    late = again = 0
    for request in requests:
        body = json.loads(request.body)
        for event in body.get("events", [body]):
            record, seq = event["data"]["id"], int(event["data"]["fields"]["first_name"][1:])
            if (record, seq) in seen:
                again += 1
            elif seq < newest.get(record, -1):
                late += 1
            seen.add((record, seq))
            newest[record] = max(newest.get(record, -1), seq)
    return late, again


def _ordered_backlog(receiver, size, ordering: str) -> dict:
    from environments.records import create_record, update_record

    environment = bench_environment(f"bench-ordered-{ordering}")
    fresh_webhook(environment, receiver.url, ordering=ordering, event_types=["patients.created", "patients.updated"])
    purge()
    receiver.requests.clear()
    # Interleaved, one commit per change: record after record, change after change, so that a record's
    # next change is always committed after every other record's previous one.
    records = [
        create_record(environment, "patients", {"first_name": "O0", "last_name": f"R{n}"})
        for n in range(size["ordered_records"])
    ]
    for seq in range(1, size["ordered_changes"]):
        for record in records:
            update_record(record, {"first_name": f"O{seq}"})
    total = size["ordered_records"] * size["ordered_changes"]
    with Worker(), Worker():
        complete = wait_for(lambda: len(receiver.requests) >= total, timeout=600, interval=0.1)
        time.sleep(0.5)
    requests = list(receiver.requests)
    late, again = _out_of_order(requests)
    return {
        "events": total,
        "received": len(requests),
        "complete": complete,
        "per_s": round(rate_of([request.at for request in requests]), 1),
        "out_of_order": late,
        "received_again": again,
    }


def scenario_ordered(receiver, size) -> dict:
    """Per-record ordering under backlog against unordered, one after the other in this run, two workers each."""
    unordered = _ordered_backlog(receiver, size, "none")
    ordered = _ordered_backlog(receiver, size, "record")
    ratio = ordered["per_s"] / unordered["per_s"] if unordered["per_s"] else 0.0
    return {
        "records": size["ordered_records"],
        "changes_per_record": size["ordered_changes"],
        "record": ordered,
        "none": unordered,
        "ratio": round(ratio, 2),
        "bar": "record >= 0.8 x none; 0 out of order per record",
        "holds": ratio >= 0.8 and ordered["out_of_order"] == 0 and ordered["complete"],
    }


def bare_round_trip_ms(url: str, count: int) -> float:
    """Mean round trip of `count` sequential POSTs of an event-sized body over one kept-alive connection."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    _, body = bare_payload(0)
    durations = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", parts.path, body=body.encode(), headers={"Content-Type": "application/json"})
            connection.getresponse().read()
            durations.append(time.perf_counter() - started)
    finally:
        connection.close()
    return statistics.mean(durations[1:] or durations) * 1000  # the first one also connects


def scenario_strict(receiver, size) -> dict:
    """Strict order: one request in flight for the whole webhook, so the receiver's round trip is the limit."""
    from webhooks.models import Attempt
    from webhooks.tests.receiver import Answer, Receiver

    total = size["strict_events"]
    environment = bench_environment("bench-strict")
    with Receiver(default=Answer(delay=0.005)) as fast:
        concurrency = count_concurrency(fast)
        webhook = fresh_webhook(environment, fast.url, ordering="strict")
        round_trip = bare_round_trip_ms(fast.url, size["round_trips"])
        fast.requests.clear()
        concurrency.peak = 0
        purge()
        for n in range(total):
            change(environment, n, "S")
        with Worker(), Worker():
            complete = wait_for(lambda: len(fast.requests) >= total, timeout=600, interval=0.1)
            time.sleep(0.5)
        requests = list(fast.requests)
    per_s = rate_of([request.at for request in requests])
    attempts = list(Attempt.objects.filter(delivery__webhook=webhook).values_list("duration_ms", flat=True))
    attempt_ms = statistics.mean(attempts) if attempts else 0.0
    limit = 1000 / round_trip
    ratio = per_s / limit
    return {
        "events": total,
        "received": len(requests),
        "complete": complete,
        "per_s": round(per_s, 1),
        "round_trip_ms": round(round_trip, 2),
        "limit_per_s": round(limit, 1),
        "attempt_mean_ms": round(attempt_ms, 2),
        "limit_by_attempts_per_s": round(1000 / attempt_ms, 1) if attempt_ms else None,
        "ratio": round(ratio, 2),
        "most_at_once": concurrency.peak,
        "bar": ">= 0.8 x 1 / mean round trip; never 2 at once",
        "holds": complete and ratio >= 0.8 and concurrency.peak == 1,
    }


def scenario_history(size) -> dict:
    from benchmarks.history_pages import measure

    results = {}
    for attempts in size["history"]:
        results[str(attempts)] = measure(attempts)
    worst = max(page["median_ms"] for result in results.values() for page in result["pages"].values())
    return {"by_attempts": results, "worst_median_ms": worst, "bar": "< 100 ms", "holds": worst < 100}


def scenario_overview(size) -> dict:
    from benchmarks.overview_queries import measure

    figures = measure(size["overview"])
    worst = max(figures["rolled_up_summaries"]["median_ms"], figures["overview_page"]["median_ms"])
    return {**figures, "worst_median_ms": worst, "bar": "< 100 ms", "holds": worst < 100}


def scenario_partitions(size) -> dict:
    from benchmarks.partitions import measure

    attempts, month_attempts, convert = size["partitions"]
    figures = measure(attempts, month_attempts, convert)
    worst = max([page["median_ms"] for page in figures["pages"].values()] + [figures["overview_page"]["median_ms"]])
    pages_hold = worst < 100
    return {
        **figures,
        "worst_median_ms": worst,
        "bar": "< 100 ms; drop < 1 s",
        "holds": pages_hold and figures["month"]["holds"] and figures["delivery_range"]["holds"],
    }


def scenario_audit(size) -> dict:
    """The Audit page and CSV export over many audit events (issue 26: 1 s for the actor filter at 1 M rows,
    the export cut off at 30 s)."""
    from benchmarks.audit_log import measure

    figures = measure(size["audit"])
    worst = max(page["median_ms"] for page in figures["pages"].values())
    return {**figures, "worst_median_ms": worst, "bar": "< 100 ms a page", "holds": worst < 100}


def _audit_rows(s: dict) -> list[tuple]:
    if "audit" not in s:
        return []
    f = s["audit"]
    one, everything = f["export"]["one_actor"], f["export"]["everything"]
    yes = "yes" if f["holds"] else "no"
    return [
        (f"Audit page, {f['rows']:,} events", f"worst median {f['worst_median_ms']} ms", "", "", f["bar"], yes),
        (
            f"audit CSV, one actor's year ({one['rows']:,} rows)",
            f"first row {one['first_row_ms']} ms, {one['total_s']} s, {one['rows_per_s']:,} rows/s",
            "",
            "",
            "",
            "",
        ),
        (
            f"audit CSV, everything (first {everything['rows']:,} rows)",
            f"first row {everything['first_row_ms']} ms, {everything['rows_per_s']:,} rows/s",
            "",
            "",
            "",
            "",
        ),
    ]


def _partition_rows(s: dict) -> list[tuple]:
    if "partitions" not in s:
        return []
    f = s["partitions"]
    month = f["month"]
    rows = [
        (
            f"history and Overview, {f['attempts']:,} attempts, {f['months']} partitions",
            f"worst median {f['worst_median_ms']} ms",
            "",
            "",
            "< 100 ms",
            "yes" if f["worst_median_ms"] < 100 else "no",
        ),
        (
            f"a month of {month['attempts']:,} attempts gone",
            f"drop {month['drop_s']} s",
            f"batched DELETE {month['batched_delete_s']} s",
            "",
            "< 1 s",
            "yes" if month["holds"] else "no",
        ),
    ]
    if "delivery_range" in f:
        r = f["delivery_range"]
        rows.append(
            (
                f"a range of {r['deliveries']:,} deliveries (+ links, {r['attempts']:,} attempts) gone",
                f"drop {r['range_drop_s']} s + attempts' month {r['attempt_month_drop_s']} s",
                f"row by row {r['row_prune_s']} s",
                "",
                "< 1 s",
                "yes" if r["holds"] else "no",
            )
        )
    if "conversion" in f:
        c = f["conversion"]
        rows.append((f"migration 0017, {c['attempts']:,} attempts", f"{c['to_partitioned_s']} s", "", "", "", ""))
        if "to_ranges_s" in c:
            rows.append((f"migration 0019, {c['deliveries']:,} deliveries", f"{c['to_ranges_s']} s", "", "", "", ""))
    return rows


def scenario_metrics(size) -> dict:
    """GET /metrics with 1,000 webhooks and 1 M attempts stored (issue 24's bar: a scrape < 100 ms)."""
    from benchmarks.metrics_scrape import measure

    webhooks, attempts = size["metrics"]
    figures = measure(webhooks, attempts)
    worst = figures["scrape_ms"]["median"]
    return {**figures, "worst_median_ms": worst, "bar": "< 100 ms", "holds": worst < 100}


class Scraper:
    """A process reading /metrics every `interval` seconds (benchmarks/metrics_scraper.py), like Prometheus;
    `times` holds when each scrape started (time.time()) once it has stopped."""

    def __init__(self, interval: float):
        self.interval = interval
        self.times: list[float] = []

    def __enter__(self) -> Scraper:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.metrics_scraper"],
            cwd=BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PGAPPNAME": "bench-scraper", "BENCH_SCRAPE_INTERVAL": str(self.interval)},
        )
        # Its start-up (Django's setup) is not a scrape's cost: the drain starts once it has scraped once.
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the scraper did not start")
        return self

    def __exit__(self, *exc) -> None:
        out, _ = self.process.communicate("", timeout=60)
        self.times = json.loads(out.splitlines()[-1]) if out.strip() else []


def _shipped_scrape_interval() -> float:
    """The scrape interval of the Prometheus configuration we ship (deploy/prometheus/prometheus.yml), in s."""
    import yaml

    config = yaml.safe_load((BASE_DIR / "deploy" / "prometheus" / "prometheus.yml").read_text())
    interval = config["global"]["scrape_interval"]
    return float(interval.removesuffix("s"))


def scenario_metrics_cost(receiver, size) -> dict:
    """Backlog throughput with /metrics scraped every second (30 x the shipped interval) against none, rounds
    alternating so a noisy machine weighs on both alike. The cost per scrape a second measured so, scaled to
    the shipped interval, is what metrics cost as shipped (issue 24's bar: < 3 %)."""
    environment = bench_environment("bench")
    off, on, scraped, drained = [], [], 0, 0.0
    for _ in range(size["metrics_cost_rounds"]):
        off.append(_backlog_rate(environment, receiver, size, "metrics-off"))
        scraper = Scraper(interval=1.0)
        on.append(_backlog_rate(environment, receiver, size, "metrics-on", beside=scraper))
        arrivals = [request.at for request in receiver.requests]
        scraped += sum(1 for at in scraper.times if min(arrivals) <= at <= max(arrivals))
        drained += max(arrivals) - min(arrivals)
    without, with_ = statistics.median(off), statistics.median(on)
    cost = (without - with_) / without * 100 if without else 0.0
    per_second = scraped / drained if drained else 0.0
    shipped = _shipped_scrape_interval()
    # No scrape within a drain (the smoke's tiny backlog) measures nothing: no figure, and the bar unproven.
    as_shipped = round(cost / per_second / shipped, 2) if per_second else None
    return {
        "without_per_s": round(without, 1),
        "with_per_s": round(with_, 1),
        "rounds": {"without": [round(r, 1) for r in off], "with": [round(r, 1) for r in on]},
        "scrapes_per_s": round(per_second, 2),
        "cost_percent": round(cost, 1),
        "shipped_interval_s": shipped,
        "cost_as_shipped_percent": as_shipped,
        "bar": "< 3 % as shipped",
        "holds": as_shipped is not None and as_shipped < 3,
    }


def scenario_receivers(size) -> dict:
    from benchmarks.receiver_costs import measure

    return measure(size["receiver_renders"], size["erase_deliveries"])


def scenario_api(size, database_url: str) -> dict:
    from benchmarks.api_throughput import measure

    return measure(database_url, seconds=size["api_seconds"])


def scenario_api_writes(receiver, size, database_url: str) -> dict:
    """Creates/s through the Data API, this checkout beside the baseline's (BENCH_BASELINE_TREE) when given."""
    from benchmarks.api_writes import measure

    trees = {"new": BASE_DIR}
    if BASELINE_TREE:
        trees = {"base": Path(BASELINE_TREE).resolve(), **trees}

    def env_for(name: str) -> dict[str, str]:
        return {**os.environ, **production_env(f"{database_url}_writes_{name}"), "PGAPPNAME": f"bench-{name}"}

    try:
        figures = measure(
            trees,
            env_for,
            receiver.url,
            seconds=size["writes_seconds"],
            rounds=int(os.environ.get("BENCH_WRITES_ROUNDS", "2")),
            # 0: without beat's sequencer beside the writers (to tell its cost from the write's own).
            sequencer=os.environ.get("BENCH_WRITES_SEQUENCER", "1") != "0",
        )
    finally:
        purge()  # the fan-out's queued tasks: no worker ran to take them
        for name in trees:
            drop_database(env_for(name)["DATABASE_URL"])
    figures["trees"] = {name: str(tree) for name, tree in trees.items()}
    return figures


def scenario_feed(size) -> dict:
    from benchmarks.feed import measure

    return measure(
        BASE_DIR,
        {**os.environ},
        events=size["feed_events"],
        trials=size["feed_trials"],
        idle_wait=size["feed_idle_wait"],
    )


def scenario_embedded(size) -> dict:
    """`make run` itself under the soak of its test: `scripts/run` on a fresh folder (SQLite, the embedded
    broker, the supervised worker and beat), 8 producers writing records through the Data API at once.

    Two halves. Live: the worker keeps pace with 8 producers writing as fast as the portal takes them
    (runserver and SQLite set that pace, about 100 writes/s on 2 cores). Backlog: the worker is frozen
    (SIGSTOP, not an exit) while the producers write the second half, then thawed; its rate draining that
    backlog is what `make run` can deliver, and the bar."""
    from integration_tools.tests.make_run import MakeRun, produce
    from webhooks.tests.receiver import Receiver

    folder = Path(tempfile.mkdtemp(prefix="bench-make-run-"))
    portal = MakeRun(folder)
    records = size["embedded_events"]
    made: list = []
    errors: list = []

    def write(count: int) -> float:
        started = time.time()
        producers = [
            threading.Thread(
                target=produce,
                args=(portal, token, n, made, errors),
                kwargs={"share": count // 8, "bursts": size["embedded_bursts"], "seconds": 0.0, "started": started},
            )
            for n in range(8)
        ]
        for thread in producers:
            thread.start()
        for thread in producers:
            thread.join()
        return time.time() - started

    try:
        portal.start()
        with Receiver() as receiver:
            portal.webhook(receiver.url)
            token = portal.token()

            def ids() -> collections.Counter:
                return collections.Counter(
                    json.loads(request.body)["data"]["id"] for request in list(receiver.requests)
                )

            live_written_in = write(records // 2)
            wait_for(lambda: len(ids()) >= len(made), timeout=300)
            live = rate_of([request.at for request in receiver.requests])
            live_count = len(receiver.requests)

            worker = portal.pid("worker")
            os.killpg(worker, signal.SIGSTOP)
            try:
                write(records - records // 2)
            finally:
                os.killpg(worker, signal.SIGCONT)
            wait_for(lambda: len(ids()) >= len(made), timeout=300)
            time.sleep(2)  # anything sent twice arrives now
            received = ids()
            drained = rate_of([request.at for request in receiver.requests[live_count:]])
    finally:
        portal.stop()
        console = portal.console()
        shutil.rmtree(folder, ignore_errors=True)
    exits = console.count(" exited with code ") + console.count(" was killed by ")
    lost = len(set(made) - set(received))
    twice = sum(1 for times in received.values() if times > 1)
    locked = console.count("database is locked")
    return {
        "records": records,
        "written": len(made),
        "write_errors": len(errors),
        "written_per_s": round((records // 2) / live_written_in, 1),
        "live_per_s": round(live, 1),
        "received": len(received),
        "ours_per_s": round(drained, 1),
        "worker_exits": exits,
        "lost": lost,
        "received_twice": twice,
        "lock_errors": locked,
        "bar": ">= 100 deliveries/s, 0 worker exits, 0 lost",
        "holds": drained >= 100 and exits == 0 and lost == 0 and not errors and locked == 0,
    }


# --- The run ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every scenario runs")
    parser.add_argument("--json", type=Path, default=BASE_DIR / "var" / "bench" / "latest.json")
    parser.add_argument("--keep-database", action="store_true", help="leave the run's database for inspection")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else SCENARIOS
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    size = SMOKE if args.smoke else FULL

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    database_url = f"{POSTGRES}/{DATABASE_PREFIX}_{stamp}_{os.getpid()}"
    ensure_database(database_url)
    os.environ.update(production_env(database_url))
    os.environ["PGAPPNAME"] = "bench-main"
    results: dict = {
        "started": stamp,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "smoke": args.smoke,
        "scenarios": {},
    }
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=os.environ, check=True)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=BASE_DIR, env=os.environ, check=True
        )
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_tools.settings")
        django.setup()
        from django.conf import settings

        from webhooks.tests.receiver import Receiver

        results["machine"]["worker"] = (
            f"{settings.CELERY_WORKER_POOL} pool, concurrency {settings.CELERY_WORKER_CONCURRENCY}"
        )
        with Receiver() as receiver:
            for name in chosen:
                started = time.monotonic()
                load_before = os.getloadavg()
                print(f"… {name}", flush=True)
                if name == "history":
                    figures = scenario_history(size)
                elif name == "overview":
                    figures = scenario_overview(size)
                elif name == "partitions":
                    figures = scenario_partitions(size)
                elif name == "audit":
                    figures = scenario_audit(size)
                elif name == "metrics":
                    figures = scenario_metrics(size)
                elif name == "receivers":
                    figures = scenario_receivers(size)
                elif name == "api":
                    figures = scenario_api(size, database_url)
                elif name == "api_writes":
                    figures = scenario_api_writes(receiver, size, database_url)
                elif name == "feed":
                    figures = scenario_feed(size)
                elif name == "embedded":
                    figures = scenario_embedded(size)
                elif name == "db_cut":
                    figures = scenario_db_cut(receiver, size, database_url)
                else:
                    figures = globals()[f"scenario_{name}"](receiver, size)
                figures["seconds"] = round(time.monotonic() - started, 1)
                # The machine may be shared: its load before and after, beside each scenario's figures.
                figures["load_average"] = {"before": load_before, "after": os.getloadavg()}
                results["scenarios"][name] = figures
    finally:
        from django.db import connections

        with contextlib.suppress(Exception):
            connections.close_all()
        if not args.keep_database:
            drop_database(database_url)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(f"\nwritten to {args.json}")
    return results


def table(results: dict) -> str:
    """One table: each scenario's figure, the bare task's in the same run, their ratio, and the bar."""
    rows = [("scenario", "Integration Tools", "bare Celery task", "ratio", "bar", "holds")]
    s = results["scenarios"]

    def yes(value) -> str:
        return "yes" if value else ("no" if value is not None else "")

    if "backlog" in s:
        f = s["backlog"]
        rows.append(
            (
                "backlog throughput",
                f"{f['ours_per_s']}/s",
                f"{f['bare_per_s']}/s",
                f"{f['ratio']}",
                f["bar"],
                yes(f["holds"]),
            )
        )
    if "oauth" in s:
        f = s["oauth"]
        rows.append(
            (
                f"backlog with OAuth ({f['token_fetches']} token fetches)",
                f"{f['oauth_per_s']}/s",
                f"{f['plain_per_s']}/s without",
                f"{f['ratio']}",
                f["bar"],
                yes(f["holds"]),
            )
        )
    if "pgbouncer" in s:
        f = s["pgbouncer"]
        rows.append(
            (
                "backlog through PgBouncer (transaction mode)",
                f"{f['pgbouncer_per_s']}/s",
                f"{f['direct_per_s']}/s direct",
                f"{f['ratio']}",
                f["bar"],
                yes(f["holds"]),
            )
        )
    if "latency" in s:
        f = s["latency"]
        rows.append(
            (
                f"latency at {f['rate']:g}/s p50 / p99",
                f"{f['ours_ms']['p50']} / {f['ours_ms']['p99']} ms",
                f"{f['bare_ms']['p50']} / {f['bare_ms']['p99']} ms",
                f"{f['p50_ratio']} / {f['p99_ratio']}",
                f["bar"],
                yes(f["holds"]),
            )
        )
    if "isolation" in s:
        f = s["isolation"]
        rows.append(
            (
                "isolation: healthy p99",
                f"{f['healthy_ms']['p99']} ms ({f['healthy_ms']['lost']} lost)",
                f"{f['bare_healthy_ms']['p99']} ms ({f['bare_healthy_ms']['lost']} lost)",
                "",
                "< 1000 ms",
                yes(f["holds"]),
            )
        )
        rows.append(
            (
                "isolation: longest bad attempt",
                f"{f['longest_bad_attempt_s']} s (timeout {f['timeout_s']} s)",
                "",
                "",
                "<= timeout + 1 s",
                "",
            )
        )
    if "recovery" in s:
        f = s["recovery"]
        rows.append(
            (
                f"recovery after {f['outage_s']:g} s outage",
                f"{f['seconds_to_last_after_return']} s to the last",
                "lost (no retries)",
                "",
                "<= 30 s",
                yes(f["holds"]),
            )
        )
    if "batching" in s:
        f = s["batching"]
        bare = s.get("backlog", {}).get("bare_per_s")
        ratio = f"{f['ours_events_per_s'] / bare:.2f}" if bare else ""
        rows.append(
            ("batching (100 per request)", f"{f['ours_events_per_s']} events/s", f"{bare or ''}/s", ratio, "", "")
        )
    if "db_cut" in s:
        f = s["db_cut"]
        rows.append(
            (
                "database connections cut",
                f"{f['unrecorded']} unrecorded of {f['requests_received']}, {f['recorded_twice']} twice",
                "",
                "",
                "0 unrecorded",
                yes(f["holds"]),
            )
        )
    if "memory" in s:
        f = s["memory"]
        rows.append(
            (
                f"worker memory over {f['deliveries']:,}",
                f"{f['rss_mb_before']} → {f['rss_mb_after']} MB ({f['growth']:.1%})",
                "",
                "",
                "< 20 %",
                yes(f["holds"]),
            )
        )
    if "isolation_many" in s:
        f = s["isolation_many"]
        rows.append(
            (
                f"isolation, {f['bad_webhooks']} bad webhooks: healthy p50 / p99 / max",
                f"{f['healthy_ms']['p50']} / {f['healthy_ms']['p99']} / {f['healthy_ms']['max']} ms "
                f"({f['healthy_ms']['lost']} lost)",
                "",
                "",
                "p99 < 1000 ms",
                yes(f["holds"]),
            )
        )
        rows.append(
            (
                "isolation, many: bad requests open at most",
                f"{f['bad_open_at_most']} (bound {f['bad_open_bound']})",
                "",
                "",
                "",
                "",
            )
        )
    if "kill9" in s:
        f = s["kill9"]
        rows.append(
            (
                f"kill -9 twice, {f['events']:,} events",
                f"{f['lost']} lost, {f['unrecorded']} unrecorded, {f['outcome_unknown']} outcome unknown",
                "",
                "",
                "0 lost, 0 unrecorded",
                yes(f["holds"]),
            )
        )
    if "ordered" in s:
        f = s["ordered"]
        rows.append(
            (
                f"per record, {f['records']} x {f['changes_per_record']} backlog",
                f"{f['record']['per_s']}/s vs {f['none']['per_s']}/s unordered, "
                f"{f['record']['out_of_order']} out of order",
                "",
                f"{f['ratio']}",
                ">= 0.8 x unordered, 0 out of order",
                yes(f["holds"]),
            )
        )
    if "strict" in s:
        f = s["strict"]
        rows.append(
            (
                "strict, receiver answering in 5 ms",
                f"{f['per_s']}/s vs {f['limit_per_s']}/s limit, at most {f['most_at_once']} at once",
                "",
                f"{f['ratio']}",
                ">= 0.8 x 1 / round trip, 1 at once",
                yes(f["holds"]),
            )
        )
    if "history" in s:
        for attempts, f in s["history"]["by_attempts"].items():
            worst = max(page["median_ms"] for page in f["pages"].values())
            rows.append(
                (
                    f"history pages, {int(attempts):,} attempts",
                    f"worst median {worst} ms",
                    "",
                    "",
                    "< 100 ms",
                    yes(worst < 100),
                )
            )
    if "overview" in s:
        f = s["overview"]
        rows.append(
            (
                f"Overview, {f['attempts']:,} attempts",
                f"page {f['overview_page']['median_ms']} ms, queries {f['rolled_up_summaries']['median_ms']} ms "
                f"(raw {f['raw_summaries']['median_ms']} ms)",
                "",
                "",
                "< 100 ms",
                yes(f["holds"]),
            )
        )
    rows.extend(_partition_rows(s))
    rows.extend(_audit_rows(s))
    if "metrics" in s:
        f = s["metrics"]
        rows.append(
            (
                f"/metrics, {f['webhooks']:,} webhooks, {f['attempts']:,} attempts",
                f"scrape {f['scrape_ms']['median']} ms ({f['series']:,} series)",
                "",
                "",
                f["bar"],
                yes(f["holds"]),
            )
        )
    if "metrics_cost" in s:
        f = s["metrics_cost"]
        rows.append(
            (
                "backlog with /metrics scraped each second",
                f"{f['with_per_s']}/s",
                f"{f['without_per_s']}/s unscraped",
                f"cost {f['cost_percent']} % at {f['scrapes_per_s']}/s, {f['cost_as_shipped_percent']} % every "
                f"{f['shipped_interval_s']:g} s",
                f["bar"],
                yes(f["holds"]),
            )
        )
    if "receivers" in s:
        f = s["receivers"]
        rows.append(
            (
                "per delivery: render all / chosen fields",
                f"{f['render_all_fields_us']} / {f['render_chosen_fields_us']} µs",
                "",
                "",
                "",
                "",
            )
        )
        rows.append(
            ("per delivery: sign HMAC / Ed25519", f"{f['sign_hmac_us']} / {f['sign_ed25519_us']} µs", "", "", "", "")
        )
        rows.append(
            (
                f"erase payloads, {f['erased_deliveries']:,} deliveries",
                f"{f['erase_us_per_delivery']} µs per delivery (batches of {f['erase_batch']})",
                "",
                "",
                "",
                "",
            )
        )
    if "api" in s:
        f = s["api"]
        rows.append(("token endpoint", f"{f['token']['rps']} req/s", "", "", "", ""))
        rows.append(("Data API read (50 rows)", f"{f['read']['rps']} req/s", "", "", "", ""))
    if "api_writes" in s:
        f = s["api_writes"]
        for variant, label in (("webhook", "a webhook subscribed"), ("no_webhook", "no webhook")):
            base = f"{f['base'][variant]['rps']}/s" if "base" in f else ""
            rows.append(
                (
                    f"Data API creates, 8 writers, {label}",
                    f"{f['new'][variant]['rps']}/s (baseline {base or 'not measured'})",
                    "",
                    f"{f['ratio'][variant]}" if f["ratio"] else "",
                    ">= 0.9 x baseline",
                    yes(f["holds"]),
                )
            )
    if "feed" in s:
        f = s["feed"]
        rows.append(
            (
                f"events feed: read {f['events']:,} by cursor",
                f"{f['read']['events_per_s']} events/s (pages of {f['read']['limit']}, "
                f"p50 {f['read']['page_ms']['p50']} ms a page)",
                "",
                "",
                ">= 20,000 events/s",
                yes(f["read_holds"]),
            )
        )
        wake = f["wake"]["ms"]
        rows.append(
            (
                "events feed: long-poll wake after a commit",
                f"p50 {wake['p50']} / p99 {wake['p99']} / max {wake['max']} ms ({f['wake']['lost']} missed)",
                "",
                "",
                "p99 <= 100 ms",
                yes(f["wake_holds"]),
            )
        )
    if "embedded" in s:
        f = s["embedded"]
        rows.append(
            (
                "make run defaults",
                f"{f['ours_per_s']}/s backlog, {f['live_per_s']}/s live, {f['worker_exits']} worker exits, "
                f"{f['lost']} lost",
                "",
                "",
                f["bar"],
                yes(f["holds"]),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
