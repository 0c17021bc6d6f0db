"""What one delivery costs, measured: the figures docs/capacity.md's arithmetic starts from.

Usage:  .venv/bin/python benchmarks/capacity.py [--deliveries N] [--json FILE]

N changes are committed through the same code the portal and Data API call (each fans out to one delivery
of one webhook, no worker running), then one production-configured Celery worker sends them to a local
receiver answering 200. For each phase: rows inserted and updated (pg_stat_user_tables of the run's own
database), database growth (pg_database_size), WAL bytes (pg_current_wal_lsn before and after: the whole
cluster's, so an upper bound on a shared machine), transactions committed (pg_stat_database), the
producer's statements (counted in this process; the worker's are not countable without pg_stat_statements
preloaded), and CPU-ms of the worker's processes and of the database backends serving this database (/proc).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench import (  # noqa: E402 - the path above first
    BASE_DIR,
    DATABASE_PREFIX,
    POSTGRES,
    Worker,
    _children,
    change,
    fresh_webhook,
    production_env,
    purge,
    wait_for,
)
from benchmarks.database import drop_database, ensure_database  # noqa: E402

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _cpu_ms(pids) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) * TICK_MS  # utime + stime
    return found


def _snapshot(worker: Worker | None = None) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(1.2)  # other backends flush their counters at most once a second
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pg_current_wal_lsn()::text, pg_database_size(current_database()),"
            " (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
            " (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables),"
            " (SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables),"
            " (SELECT coalesce(sum(n_tup_del), 0) FROM pg_stat_user_tables)"
        )
        lsn, size, commits, inserted, updated, deleted = cursor.fetchone()
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        backends = _cpu_ms(row[0] for row in cursor.fetchall())
    workers = _cpu_ms([worker.process.pid, *_children(worker.process.pid)]) if worker else {}
    return {
        "lsn": lsn,
        "size": size,
        "commits": commits,
        "inserted": int(inserted),
        "updated": int(updated),
        "deleted": int(deleted),
        "backends": backends,
        "workers": workers,
    }


def _difference(before: dict, after: dict, count: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(%s, %s)", [after["lsn"], before["lsn"]])
        wal = float(cursor.fetchone()[0])

    def each(total: float) -> float:
        return round(total / count, 2)

    backend_ms = sum(ms - before["backends"].get(pid, 0.0) for pid, ms in after["backends"].items())
    worker_ms = sum(ms - before["workers"].get(pid, 0.0) for pid, ms in after["workers"].items())
    return {
        "rows_inserted": each(after["inserted"] - before["inserted"]),
        "rows_updated": each(after["updated"] - before["updated"]),
        "database_growth_bytes": each(after["size"] - before["size"]),
        "wal_bytes_cluster": each(wal),
        "transactions": each(after["commits"] - before["commits"]),
        "database_cpu_ms": each(backend_ms),
        "worker_cpu_ms": each(worker_ms) if after["workers"] else None,
    }


def _produce(environment, deliveries: int) -> dict:
    """Producing: what the portal or the Data API does for each change (record, event, fan-out to a delivery),
    per delivery, with this process's CPU and statements."""
    from django.db import connection

    before = _snapshot()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    statements = [0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        for n in range(deliveries):
            change(environment, n, "C")
    after_cpu = resource.getrusage(resource.RUSAGE_SELF)
    produce = _difference(before, _snapshot(), deliveries)
    produce["producer_cpu_ms"] = round(
        (after_cpu.ru_utime + after_cpu.ru_stime - cpu.ru_utime - cpu.ru_stime) * 1000 / deliveries, 2
    )
    produce["statements"] = round(statements[0] / deliveries, 2)
    return produce


def measure(receiver, deliveries: int) -> dict:
    """Commit `deliveries` changes, then deliver them as a backlog with one worker; each phase per delivery."""
    from django.db import connection
    from django.utils import timezone

    from environments.models import Environment
    from environments.tests.factories import make_environment
    from webhooks.delivery import queueing
    from webhooks.models import Attempt, Delivery

    environment = Environment.objects.filter(slug="capacity").first() or make_environment("capacity")
    webhook = fresh_webhook(environment, receiver.url)
    purge()
    receiver.requests.clear()

    produce = _produce(environment, deliveries)

    # Delivering: the deliveries wait as a backlog while the worker starts (its start-up is not counted), then
    # are all due at once and drained through the webhook's sending slots.
    Delivery.objects.filter(webhook=webhook).update(
        next_attempt_at=timezone.now() + datetime.timedelta(hours=1), leased_until=None, lease_owner=""
    )
    purge()
    with Worker() as worker:
        worker.wait_ready()
        before = _snapshot(worker)
        started = time.monotonic()
        Delivery.objects.filter(webhook=webhook).update(next_attempt_at=timezone.now())
        queueing.drain(webhook.pk, copies=webhook.max_in_flight)
        wait_for(lambda: Attempt.objects.filter(webhook=webhook).count() >= deliveries, timeout=900, interval=0.2)
        seconds = time.monotonic() - started
        deliver = _difference(before, _snapshot(worker), deliveries)
    deliver["seconds"] = round(seconds, 1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT avg(pg_column_size(a.*)) FROM webhooks_attempt a WHERE webhook_id = %s", [webhook.pk])
        attempt_row = float(cursor.fetchone()[0])
        cursor.execute("SELECT avg(pg_column_size(d.*)) FROM webhooks_delivery d WHERE webhook_id = %s", [webhook.pk])
        delivery_row = float(cursor.fetchone()[0])

    return {
        "deliveries": deliveries,
        "produce": produce,
        "deliver": deliver,
        "row_bytes": {"attempt": round(attempt_row), "delivery": round(delivery_row)},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--json", type=Path, default=BASE_DIR / "var" / "bench" / "capacity.json")
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    database_url = f"{POSTGRES}/{DATABASE_PREFIX}_capacity_{stamp}_{os.getpid()}"
    ensure_database(database_url)
    os.environ.update(production_env(database_url))
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=os.environ, check=True)
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integration_tools.settings")
        django.setup()
        from webhooks.tests.receiver import Receiver

        with Receiver() as receiver:
            measure(receiver, min(200, args.deliveries))  # warms caches, plans and the first pages of tables
            results = measure(receiver, args.deliveries)
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(database_url)
    results["cores"] = os.cpu_count()
    results["load_average"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
