"""The scale-out drills' shared parts: a burst of Data API writes through a real web process, and its tally.

A drill writes records through the portal under gunicorn (so the web process queues the work on whatever
broker it is given), breaks something mid-burst, and then counts: every event reached the receiver, every
request the receiver got has its recorded attempt, and how many came twice.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from collections.abc import Callable

import requests

from conftest import wait_for
from credentials.tests.factories import make_client, make_credential
from webhooks.models import Attempt, Delivery


@dataclasses.dataclass
class Figures:
    """What a drill produced and what came of it; `print`ed into the test output for the README."""

    name: str
    produced: int
    delivered: int
    requests_received: int
    duplicates: int
    unrecorded: int
    not_succeeded: int
    drain_seconds: float

    def line(self) -> str:
        return (
            f"DRILL {self.name}: produced {self.produced}, delivered {self.delivered}, requests received "
            f"{self.requests_received}, duplicates {self.duplicates}, unrecorded {self.unrecorded}, "
            f"not succeeded {self.not_succeeded}, drained in {self.drain_seconds:.1f} s"
        )


def start_two_workers(start_worker, **env) -> list:
    """Two workers, each with beat as on separate hosts (one beat holds the lease), started side by side: the
    drill waits for the slower, not the sum."""
    first = start_worker(ready=False, **env)
    second = start_worker(**env)
    wait_for(lambda: " ready." in first.log_path.read_text(), timeout=60, message="the first worker to be ready")
    assert first.poll() is None, first.log_path.read_text()[-2000:]
    return [first, second]


def data_api_session(base_url: str, environment) -> requests.Session:
    """A session holding a bearer token for `environment`, obtained from the portal at `base_url`."""
    api_client = make_client(environment)
    _, secret = make_credential(api_client)
    answer = requests.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": api_client.client_id, "client_secret": secret},
        timeout=10,
    )
    assert answer.ok, answer.text
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return session


def write_burst(
    session: requests.Session, base_url: str, environment, total: int, *, during: Callable[[int], None]
) -> list[str]:
    """Create `total` patients through the Data API, calling `during(n)` after each; their record ids."""
    ids = []
    for n in range(total):
        answer = session.post(
            f"{base_url}/api/v1/{environment.slug}/patients/",
            json={"fields": {"first_name": f"P{n}", "last_name": "Drill"}},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
        during(n)
    return ids


def events_received(receiver) -> collections.Counter:
    """How many requests the receiver got for each record id."""
    return collections.Counter(json.loads(request.body)["data"]["id"] for request in list(receiver.requests))


class Supervisor:
    """Restarts a worker that exits on its own, as docker-compose's `restart: unless-stopped` or systemd would;
    keeps the last line each one wrote."""

    def __init__(self, start_worker, workers: list, **env: str):
        self.start_worker, self.workers, self.env = start_worker, workers, env
        self.restarts: list[str] = []

    def tend(self, *args) -> None:
        for index, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.restarts.append(worker.log_path.read_text().strip().splitlines()[-1][:200])
                self.workers[index] = self.start_worker(ready=False, **self.env)


def drain_and_tally(
    name: str, webhook, receiver, record_ids: list[str], started: float, *, timeout: float, tend=lambda: None
):
    """Wait until every delivery of `webhook` succeeded (calling `tend()` meanwhile), then count what the
    receiver got against what was recorded; the figures, also printed for the CI log."""

    def drained() -> bool:
        tend()
        waiting = Delivery.objects.filter(webhook=webhook).exclude(status=Delivery.Status.SUCCEEDED).exists()
        return not waiting and Delivery.objects.filter(webhook=webhook).count() >= len(record_ids)

    wait_for(
        drained,
        timeout=timeout,
        interval=0.2,
        message=f"{name}: every delivery to succeed",
    )
    drained = time.monotonic() - started
    time.sleep(1)  # a request still on its way arrives and is recorded
    requests_got = list(receiver.requests)
    received = collections.Counter(request.headers["webhook-id"] for request in requests_got)
    recorded = collections.Counter(
        Attempt.objects.filter(delivery__webhook=webhook).values_list("delivery__message_id", flat=True)
    )
    events = events_received(receiver)
    figures = Figures(
        name=name,
        produced=len(record_ids),
        delivered=len(set(record_ids) & set(events)),
        requests_received=len(requests_got),
        duplicates=sum(times - 1 for times in events.values()),
        unrecorded=sum(max(0, count - recorded.get(message_id, 0)) for message_id, count in received.items()),
        not_succeeded=Delivery.objects.filter(webhook=webhook).exclude(status=Delivery.Status.SUCCEEDED).count(),
        drain_seconds=drained,
    )
    print(figures.line())
    return figures


def assert_nothing_lost(figures: Figures) -> None:
    """Every event has its delivery at the receiver, and every request the receiver got is in the history."""
    assert figures.delivered == figures.produced, figures.line()
    assert figures.unrecorded == 0, figures.line()
    assert figures.not_succeeded == 0, figures.line()
