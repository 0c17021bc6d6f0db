"""Through PgBouncer in transaction mode: the web app, a worker and beat share a few server connections.

In transaction mode a client's next transaction may run on another server connection, so anything that
outlives a transaction (a session advisory lock, a `SET`, a server-side cursor, a prepared statement) would go
wrong. The drill gives PgBouncer fewer server connections than it has clients, so transactions of different
processes take turns on the same server connections; then the delivery and Data API suites run through it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection

from conftest import BASE_DIR, gunicorn_serving, wait_for
from environments.tests.factories import make_environment
from integration_tools.tests.drills import assert_nothing_lost, data_api_session, drain_and_tally, write_burst
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

PORT = 9401
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


def _ini(directory: Path, database: dict) -> Path:
    users = directory / "users.txt"
    users.write_text(f'"{database["USER"] or "postgres"}" "{database.get("PASSWORD") or ""}"\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={database.get('HOST') or '127.0.0.1'} port={database.get('PORT') or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {PORT}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\nadmin_users = {database['USER'] or 'postgres'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\nmax_client_conn = 200\n"
        # psycopg sends no startup options Django does not need; these two are harmless when it does.
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    for path in (directory, users, ini):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return ini


@contextlib.contextmanager
def pgbouncer():
    """Debian's PgBouncer on PORT in front of the test database's server, in transaction mode."""
    directory = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    ini = _ini(directory, connection.settings_dict)
    # PgBouncer refuses to run as root: as root, run it as the postgres user.
    command = (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + ["/usr/sbin/pgbouncer", str(ini)]
    log = open(directory / "pgbouncer.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _admin("SHOW VERSION") is not None, timeout=10, message="PgBouncer to listen")
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)


def _admin(command: str) -> list[list[str]] | None:
    """A command on PgBouncer's admin console (simple query protocol only, so through psql); its rows."""
    user = connection.settings_dict["USER"] or "postgres"
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(PORT), "-U", user, "-d", "pgbouncer", "-AtF", "\t", "-c", command],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return [line.split("\t") for line in done.stdout.splitlines()] if done.returncode == 0 else None


def _through_pgbouncer(database: str) -> dict[str, str]:
    settings = connection.settings_dict
    user = settings["USER"] or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    return {"DATABASE_URL": f"postgres://{user}{password}@127.0.0.1:{PORT}/{database}", "DATABASE_POOLER": "pgbouncer"}


@pytest.mark.django_db(transaction=True)
def test_web_worker_and_beat_deliver_a_burst_through_pgbouncer_with_fewer_server_connections(start_worker, tmp_path):
    database = _through_pgbouncer(connection.settings_dict["NAME"])
    environment = make_environment("pgbouncer-drill")
    with pgbouncer(), Receiver(default=Answer(delay=0.01)) as receiver:
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
        start_worker(**database)
        with gunicorn_serving(["--workers", "2"], tmp_path / "gunicorn.log", **database) as url:
            session = data_api_session(url, environment)
            clients = []
            started = time.monotonic()
            ids = write_burst(
                session, url, environment, BURST, during=lambda n: n % 20 or clients.append(_admin("SHOW CLIENTS"))
            )
            figures = drain_and_tally("pgbouncer", webhook, receiver, ids, started, timeout=90)
            servers = _admin("SHOW SERVERS")
    assert_nothing_lost(figures)
    # The processes' transactions took turns on at most POOL_SIZE server connections.
    most_clients = max(len(rows or []) for rows in clients)
    print(f"DRILL pgbouncer: up to {most_clients} client connections on {len(servers)} server connections")
    assert most_clients > POOL_SIZE and 0 < len(servers) <= POOL_SIZE


def test_the_delivery_and_data_api_suites_pass_through_pgbouncer(django_db_blocker):
    database = _through_pgbouncer(f"{connection.settings_dict['NAME']}_pgbouncer")
    command = [sys.executable, "-m", "pytest", *SUITES, "-k", LEFT_TO_THE_DIRECT_RUN, "-q", "-p", "no:cacheprovider"]
    # Made afresh at the start and kept at the end: PgBouncer still holds server connections to it then.
    command += ["--create-db", "--reuse-db"]
    env = {**os.environ, **database}
    with pgbouncer():
        run = subprocess.run(command, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    print(f"DRILL pgbouncer suites: {summary}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
