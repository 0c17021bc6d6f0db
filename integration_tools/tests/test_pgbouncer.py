"""Through PgBouncer in transaction mode: the web app, a worker and beat share a few server connections.

In transaction mode a client's next transaction may run on another server connection, so anything that
outlives a transaction (a session advisory lock, a `SET`, a server-side cursor, a prepared statement) would go
wrong. The drill gives PgBouncer fewer server connections than it has clients, so transactions of different
processes take turns on the same server connections; then the delivery and Data API suites run through it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from conftest import BASE_DIR, gunicorn_serving
from environments.tests.factories import make_environment
from integration_tools.tests.drills import assert_nothing_lost, data_api_session, drain_and_tally, write_burst
from integration_tools.tests.pgbouncer_server import PgBouncer
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

POOL_SIZE = 4
BURST = 150
# The suites run through PgBouncer: the Data API's, and the delivery engine's claims and ledger writes (a
# connection cut mid-batch among them) and real workers with beat. Within the CI budget: the fan-out's and the
# feed's, and the two slowest worker tests (a killed worker, a flushed Redis: 90 s together, nothing about
# connections) are left to the direct run.
SUITES = [
    "dataapi/tests/test_data_api.py",
    "webhooks/tests/delivery/test_ledger.py",
    "webhooks/tests/delivery/test_worker_delivery.py",
]
LEFT_TO_THE_DIRECT_RUN = "not flushed and not killed"


@pytest.mark.django_db(transaction=True)
def test_web_worker_and_beat_deliver_a_burst_through_pgbouncer_with_fewer_server_connections(start_worker, tmp_path):
    environment = make_environment("pgbouncer-drill")
    answer = Answer(delay=0.01)
    with PgBouncer(connection.settings_dict, pool_size=POOL_SIZE) as pooler, Receiver(default=answer) as receiver:
        database = pooler.env_for(connection.settings_dict["NAME"])

        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        start_worker(**database)
        with gunicorn_serving(["--workers", "2"], tmp_path / "gunicorn.log", **database) as url:
            session = data_api_session(url, environment)
            clients = []
            started = time.monotonic()
            ids = write_burst(
                session,
                url,
                environment,
                BURST,
                during=lambda n: n % 20 or clients.append(pooler.admin("SHOW CLIENTS")),
            )
            figures = drain_and_tally("pgbouncer", webhook, receiver, ids, started, timeout=90)
            servers = pooler.admin("SHOW SERVERS")
    assert_nothing_lost(figures)
    # The processes' transactions took turns on at most POOL_SIZE server connections.
    most_clients = max(len(rows or []) for rows in clients)
    print(f"DRILL pgbouncer: up to {most_clients} client connections on {len(servers)} server connections")
    assert most_clients > POOL_SIZE and 0 < len(servers) <= POOL_SIZE


def test_the_delivery_and_data_api_suites_pass_through_pgbouncer(django_db_blocker):
    command = [sys.executable, "-m", "pytest", *SUITES, "-k", LEFT_TO_THE_DIRECT_RUN, "-q", "-p", "no:cacheprovider"]
    # Made afresh at the start and kept at the end: PgBouncer still holds server connections to it then.
    command += ["--create-db", "--reuse-db"]
    with PgBouncer(connection.settings_dict, pool_size=POOL_SIZE) as pooler:
        env = {**os.environ, **pooler.env_for(f"{connection.settings_dict['NAME']}_pgbouncer")}
        run = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    print(f"DRILL pgbouncer suites: {summary}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
