"""`make run` used hard, as a new user would: its own script, configuration and embedded defaults.

One soak, run once, sized as the issue asks: `scripts/run` on a fresh folder (SQLite, the
embedded broker, the supervised worker and beat), 8 producers writing 2,000 records through the
Data API in bursts over 5 minutes. The worker never exits, every delivery arrives exactly once,
nothing reports a lock error. Then the worker is killed as a crash would: `scripts/run` restarts
it, and the portal's banner appears while it is down and goes once it is back.
"""

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests

from conftest import wait_for
from webhooks.tests.receiver import Receiver

from .make_run import BANNER, MakeRun, logged_in, produce

PRODUCERS = 8
RECORDS = 2_000
SOAK_SECONDS = 300
BURSTS = 20


@pytest.fixture
def make_run(tmp_path):
    portal = MakeRun(tmp_path)
    try:
        portal.start()
        yield portal
    finally:
        portal.stop()  # even when it never served: nothing it started may outlive the test
    # Ctrl-C stopped every process it started: nothing is left holding the port.
    assert not portal.answers()


def test_make_run_survives_eight_producers_for_five_minutes_and_restarts_a_killed_worker(make_run):
    portal = make_run
    with Receiver() as receiver:
        token = _a_client_and_a_webhook(portal, receiver)
        made = _eight_producers_for_five_minutes(portal, token)

        wait_for(lambda: len(_received_ids(receiver)) >= RECORDS, timeout=120, interval=0.5, message="every delivery")
        time.sleep(3)  # anything sent twice would arrive now
        received = _received_ids(receiver)
        assert set(received) == set(made)
        assert [record for record, times in received.items() if times > 1] == []

        console = portal.console()
        assert "exited" not in console and "was killed" not in console, console[-3000:]
        assert "Unrecoverable error" not in console
        assert "database is locked" not in console

        _a_killed_worker_is_restarted_and_the_banner_says_so_meanwhile(portal)

        # The restarted worker sends: one more record arrives.
        response = requests.post(
            f"{portal.url}/api/v1/sandbox-test/patients/",
            json={"fields": {"first_name": "After", "last_name": "Restart"}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 201
        wait_for(
            lambda: response.json()["id"] in _received_ids(receiver), timeout=60, message="a delivery after the restart"
        )


def _a_client_and_a_webhook(portal, receiver) -> str:
    """A client with write access, a webhook to `receiver`, made with the portal's own commands; a token."""
    client = portal.manage("create_client", "Soak", "--environment", "sandbox-test", "--scope", "patients:write")
    secret = portal.manage("create_credential", client["client_id"], "--name", "soak")["client_secret"]
    portal.manage(
        "create_webhook",
        "--environment",
        "sandbox-test",
        "--name",
        "Soak receiver",
        "--url",
        receiver.url,
        "--events",
        "patients.created",
    )
    return requests.post(
        f"{portal.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], secret),
        timeout=10,
    ).json()["access_token"]


def _eight_producers_for_five_minutes(portal, token: str) -> list:
    """Each producer writes its share of RECORDS in BURSTS over SOAK_SECONDS; the ids made, all of them."""
    made: list = []
    errors: list = []
    started = time.time()
    producers = [
        threading.Thread(
            target=produce,
            args=(portal, token, n, made, errors),
            kwargs={"share": RECORDS // PRODUCERS, "bursts": BURSTS, "seconds": SOAK_SECONDS, "started": started},
        )
        for n in range(PRODUCERS)
    ]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(timeout=SOAK_SECONDS + 300)
    assert errors == []
    assert len(made) == RECORDS
    return made


def _received_ids(receiver) -> Counter:
    return Counter(json.loads(request.body)["data"]["id"] for request in list(receiver.requests))


def _a_killed_worker_is_restarted_and_the_banner_says_so_meanwhile(portal) -> None:
    # A crash: the worker and its pool are killed at once. scripts/run restarts it and says so;
    # meanwhile every page says nothing is being sent, and once it is back the banner goes.
    session = logged_in(portal)
    assert BANNER not in session.get(f"{portal.url}/e/sandbox-test/", timeout=10).text
    killed = portal.pid("worker")
    os.killpg(killed, signal.SIGKILL)
    wait_for(
        lambda: BANNER in session.get(f"{portal.url}/e/sandbox-test/", timeout=10).text,
        timeout=30,
        interval=0.2,
        message="the banner while the worker is down",
    )
    wait_for(lambda: portal.pid("worker") != killed, timeout=30, message="a new worker")
    wait_for(
        lambda: BANNER not in session.get(f"{portal.url}/e/sandbox-test/", timeout=10).text,
        timeout=60,
        interval=0.5,
        message="the banner to go once the worker is back",
    )
    console = portal.console()
    assert "the worker was killed by SIGKILL" in console
    assert "starting the worker again (restart 1)" in console
