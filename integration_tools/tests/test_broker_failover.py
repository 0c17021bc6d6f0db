"""Brokers past one machine: Redis behind Sentinel losing its master mid-burst, the same burst on RabbitMQ, and
the retry schedule kept in PostgreSQL rather than in any broker.

The database says what is due; a broker only carries "look now". So a broker that loses a node may delay
deliveries, never lose them: what its dead master held is queued again by the sweeper from the database.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from conftest import gunicorn_serving, wait_for
from environments.records import create_record
from environments.tests.factories import make_environment
from integration_tools.tests.drills import (
    Supervisor,
    assert_nothing_lost,
    data_api_session,
    drain_and_tally,
    start_two_workers,
    write_burst,
)
from webhooks.delivery.retry_policy import COUNTDOWN_LIMIT_SECONDS
from webhooks.models import Delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

MASTER_NAME = "drill"
MASTER_PORT, REPLICA_PORT = 6390, 6391
SENTINEL_PORTS = (6392, 6393, 6394)
BURST = 300
# Enough to show the same path on RabbitMQ, within the CI budget.
RABBITMQ_BURST = 150
RABBITMQ_VHOST = "integration-tools-drills"


def _redis_server(tmp_path: Path, port: int, *extra: str) -> subprocess.Popen:
    directory = tmp_path / f"redis-{port}"
    directory.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", str(directory), *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _sentinel(tmp_path: Path, port: int) -> subprocess.Popen:
    # Sentinel rewrites its configuration file as it learns the group, so each has its own.
    config = tmp_path / f"sentinel-{port}.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor {MASTER_NAME} 127.0.0.1 {MASTER_PORT} 2\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
        f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n"
    )
    return subprocess.Popen(["redis-sentinel", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _master_port() -> int | None:
    """The master's port as the first sentinel that answers names it."""
    for port in SENTINEL_PORTS:
        with contextlib.suppress(redis.RedisError):
            address = redis.Redis(port=port, socket_timeout=1).sentinel_get_master_addr_by_name(MASTER_NAME)
            if address:
                return int(address[1])
    return None


@contextlib.contextmanager
def sentinel_group(tmp_path: Path):
    """A master, its replica and three sentinels on loopback; yields the processes by role."""
    processes = {"master": _redis_server(tmp_path, MASTER_PORT)}
    processes["replica"] = _redis_server(tmp_path, REPLICA_PORT, "--replicaof", "127.0.0.1", str(MASTER_PORT))
    try:
        wait_for(
            lambda: _replication(REPLICA_PORT).get("master_link_status") == "up",
            timeout=20,
            message="the replica to sync",
        )
        for port in SENTINEL_PORTS:
            processes[f"sentinel-{port}"] = _sentinel(tmp_path, port)
        wait_for(lambda: _sentinels_agree(), timeout=30, message="three sentinels to see the master and replica")
        yield processes
    finally:
        for process in processes.values():
            process.kill()
            process.wait(timeout=10)


def _replication(port: int) -> dict:
    with contextlib.suppress(redis.RedisError):
        return redis.Redis(port=port, socket_timeout=1).info("replication")
    return {}


def _sentinels_agree() -> bool:
    with contextlib.suppress(redis.RedisError):
        master = redis.Redis(port=SENTINEL_PORTS[0], socket_timeout=1).sentinel_master(MASTER_NAME)
        return master["num-other-sentinels"] == 2 and master["num-slaves"] == 1
    return False


def _sentinel_url() -> str:
    return ";".join(f"sentinel://127.0.0.1:{port}" for port in SENTINEL_PORTS) + "/0"


@pytest.mark.django_db(transaction=True)
def test_losing_the_redis_master_mid_burst_loses_no_delivery(start_worker, tmp_path):
    broker = {"CELERY_BROKER_URL": _sentinel_url(), "CELERY_BROKER_MASTER_NAME": MASTER_NAME}
    environment = make_environment("sentinel-drill")
    with sentinel_group(tmp_path) as group, Receiver(default=Answer(delay=0.01)) as receiver:
        receiver.server.handle_error = lambda request, client_address: None
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        supervisor = Supervisor(start_worker, start_two_workers(start_worker, **broker), **broker)
        with gunicorn_serving(["--workers", "2"], tmp_path / "gunicorn.log", **broker) as url:
            session = data_api_session(url, environment)
            killed = {}

            def kill_master_a_third_in(n: int) -> None:
                supervisor.tend()
                if not killed and len(receiver.requests) >= BURST // 3:
                    group["master"].kill()
                    killed["at"] = time.monotonic()
                    killed["after_requests"] = len(receiver.requests)
                elif killed and "promoted" not in killed and _master_port() == REPLICA_PORT:
                    killed["promoted"] = time.monotonic()

            started = time.monotonic()
            # Deliveries go on through the promoted replica: the master never comes back.
            ids = write_burst(session, url, environment, BURST, during=kill_master_a_third_in)
            assert killed, "the burst ended before a third of it reached the receiver: the master was never killed"
            wait_for(lambda: _master_port() == REPLICA_PORT, timeout=30, message="Sentinel to promote the replica")
            promoted_after = killed.get("promoted", time.monotonic()) - killed["at"]
            figures = drain_and_tally(
                "sentinel failover", webhook, receiver, ids, started, timeout=90, tend=supervisor.tend
            )
    print(f"DRILL sentinel failover: master killed after {killed['after_requests']} requests; ", end="")
    print(f"replica promoted {promoted_after:.1f} s later; workers restarted: {len(supervisor.restarts)} ", end="")
    print(supervisor.restarts)
    assert_nothing_lost(figures)


def _rabbitmq_vhost() -> str:
    """Our own vhost on the machine's RabbitMQ, fresh (no queue left from an earlier run), guest allowed."""
    run = lambda *args: subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)  # noqa: E731
    run("delete_vhost", RABBITMQ_VHOST)
    made = run("add_vhost", RABBITMQ_VHOST)
    assert made.returncode == 0, f"rabbitmqctl add_vhost failed: {made.stderr}"
    allowed = run("set_permissions", "-p", RABBITMQ_VHOST, "guest", ".*", ".*", ".*")
    assert allowed.returncode == 0, f"rabbitmqctl set_permissions failed: {allowed.stderr}"
    return f"amqp://guest:guest@127.0.0.1:5672/{RABBITMQ_VHOST}"


@pytest.mark.django_db(transaction=True)
def test_the_same_burst_on_rabbitmq_loses_no_delivery(start_worker, tmp_path):
    broker = {"CELERY_BROKER_URL": _rabbitmq_vhost()}
    environment = make_environment("rabbitmq-drill")
    with Receiver(default=Answer(delay=0.01)) as receiver:
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        start_two_workers(start_worker, **broker)
        with gunicorn_serving(["--workers", "2"], tmp_path / "gunicorn.log", **broker) as url:
            session = data_api_session(url, environment)
            started = time.monotonic()
            ids = write_burst(session, url, environment, RABBITMQ_BURST, during=lambda n: None)
            figures = drain_and_tally("rabbitmq", webhook, receiver, ids, started, timeout=90)
    assert_nothing_lost(figures)


def _tasks_on_the_broker(client: redis.Redis) -> list[dict]:
    """Every task message the Redis broker holds: queued, and taken by a worker but not acknowledged (a worker
    holding a task with an ETA keeps it there until it runs)."""
    raw = client.lrange("celery", 0, -1) + list(client.hgetall("unacked").values())
    messages = [json.loads(item) for item in raw]
    # Unacknowledged entries are [message, exchange, routing key].
    return [message[0] if isinstance(message, list) else message for message in messages]


def test_a_retry_hours_away_waits_in_postgresql_not_on_the_broker(start_worker):
    # No early probe of the failing webhook within the test: only the schedule's own tries.
    start_worker(WEBHOOK_PROBE_MIN_SECONDS="600")
    environment = make_environment()
    with Receiver(default=Answer(status=500)) as receiver:
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        create_record(environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        # At once, then 5 s later (on the queue with a countdown); the third try is 5 minutes off.
        delivery = wait_for(
            lambda: Delivery.objects.filter(webhook=webhook, attempt_count=2, status=Delivery.Status.RETRYING).first(),
            timeout=30,
            message="two failed attempts",
        )
        assert delivery.next_attempt_at > timezone.now() + datetime.timedelta(seconds=200)
        time.sleep(3)  # several sweeps (every second here): they must not put it on the queue early either
        tasks = _tasks_on_the_broker(redis.Redis.from_url(settings.CELERY_BROKER_URL))
    latest = timezone.now() + datetime.timedelta(seconds=COUNTDOWN_LIMIT_SECONDS + 5)
    etas = [datetime.datetime.fromisoformat(task["headers"]["eta"]) for task in tasks if task["headers"].get("eta")]
    assert all(eta <= latest for eta in etas), f"tasks waiting on the broker until {max(etas)}"
    assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert delivery.attempt_count == 2 and delivery.next_attempt_at > timezone.now() + datetime.timedelta(seconds=200)
