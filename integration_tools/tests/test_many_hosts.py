"""Workers on two hosts, one cut off from the network mid-burst and then restored.

Each worker runs in its own network namespace and reaches PostgreSQL, Redis and the receiver over its own
link. Cutting a link leaves that worker's connections hanging, leases and advisory locks held by its
transactions included; the other host must carry on within the webhook's cap, and when the link comes back
nothing is lost and every request the receiver got is in the history, without anybody doing anything.
"""

from __future__ import annotations

import collections
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from conftest import wait_for
from environments.records import create_record
from environments.tests.factories import make_environment
from integration_tools.tests.drills import assert_nothing_lost, drain_and_tally
from integration_tools.tests.hosts import SERVICES_ADDRESS, Forwarder, hosts, namespaces_unavailable
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

# Records made before the cut, spread over it, and after the link is back (so the restored host is seen
# taking work again by itself).
PHASE = 100
CAP = 4
CUT_SECONDS = 60

_unavailable = namespaces_unavailable()
if _unavailable:
    print(f"SKIPPED many-hosts drill: network namespaces cannot be made here: {_unavailable}")
pytestmark = pytest.mark.skipif(bool(_unavailable), reason=f"network namespaces cannot be made: {_unavailable}")


def _worker_env(database_port: int, redis_port: int) -> dict[str, str]:
    """What a worker on a host needs: the test database and the broker, through the services' address."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    broker = urlsplit(settings.CELERY_BROKER_URL)
    user = db["USER"] or "postgres"
    return {
        "DATABASE_URL": f"postgres://{user}{password}@{SERVICES_ADDRESS}:{database_port}/{db['NAME']}",
        "CELERY_BROKER_URL": urlunsplit(broker._replace(netloc=f"{SERVICES_ADDRESS}:{redis_port}")),
        "WEBHOOK_ALLOWED_NETWORKS": f"{SERVICES_ADDRESS}/32",
    }


@pytest.mark.django_db(transaction=True)
def test_a_host_cut_off_mid_burst_loses_nothing_and_the_cap_holds(start_worker):
    db = connection.settings_dict
    broker = urlsplit(settings.CELERY_BROKER_URL)
    environment = make_environment("hosts-drill")
    with (
        hosts("itdrill-a", "itdrill-b") as (host_a, host_b),
        Forwarder((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432))) as database,
        Forwarder((broker.hostname or "127.0.0.1", broker.port or 6379)) as redis,
        Receiver(default=Answer(delay=0.02), host=SERVICES_ADDRESS) as receiver,
    ):
        receiver.server.handle_error = lambda request, client_address: None
        webhook = make_webhook(
            environment, receiver.url, event_types=["patients.created"], timeout_seconds=2, max_in_flight=CAP
        )
        env = _worker_env(database.port, redis.port)
        first = start_worker(ready=False, prefix=host_a.command_prefix, **env)
        start_worker(beat=False, prefix=host_b.command_prefix, **env)
        wait_for(lambda: " ready." in first.log_path.read_text(), timeout=60, message="host a's worker to be ready")
        ids: list[str] = []
        started = time.monotonic()
        _produce(environment, ids, PHASE, every_s=0.03)
        before = _senders(receiver)
        host_b.cut_off()
        _produce(environment, ids, PHASE, every_s=CUT_SECONDS / PHASE)
        host_b.restore()
        during = _senders(receiver) - before
        _produce(environment, ids, PHASE, every_s=0.1)
        figures = drain_and_tally("two hosts, one cut off", webhook, receiver, ids, started, timeout=180)
        after = _senders(receiver) - before - during
    print(
        f"DRILL two hosts: host b cut off for {CUT_SECONDS} s; requests by host before the cut "
        f"{dict(before)}, during it {dict(during)}, after it {dict(after)}; "
        f"at most {receiver.most_in_flight} in flight (cap {CAP})"
    )
    assert_nothing_lost(figures)
    assert receiver.most_in_flight <= CAP
    # Both hosts were sending when one was cut off, and the other carried on alone meanwhile.
    assert before[host_a.address] and before[host_b.address], before
    assert during[host_a.address] and not during[host_b.address], during
    # Nobody restarted anything: the host that was cut off took work again once its link came back.
    assert after[host_b.address], after


def _produce(environment, ids: list[str], count: int, *, every_s: float) -> None:
    """Make `count` patients, one every `every_s` seconds, adding their record ids to `ids`."""
    for _ in range(count):
        n = len(ids)
        ids.append(str(create_record(environment, "patients", {"first_name": f"P{n}", "last_name": "H"}).id))
        time.sleep(every_s)


def _senders(receiver) -> collections.Counter:
    """Requests the receiver got so far, by the address of the host that sent them."""
    return collections.Counter(request.peer for request in list(receiver.requests))
