"""Token endpoint requests/s and Data API reads/s, measured against gunicorn on this machine.

Usage:  DEBUG=1 .venv/bin/python benchmarks/api_throughput.py [--seconds 10] [--threads 8] [--workers 2]

Uses its own PostgreSQL database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/integration_tools_bench), created and migrated
if missing. All traffic goes to 127.0.0.1; every loop is bounded by --seconds.
Prints figures; asserts nothing.
"""

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from benchmarks.database import ensure_database  # noqa: E402 - needs the path above


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/integration_tools_bench")
    ensure_database(database_url)
    result = measure(database_url, seconds=args.seconds, threads=args.threads, workers=args.workers)
    print(
        f"machine: {os.cpu_count()} cores; gunicorn workers: {args.workers}; client threads: {args.threads}; "
        f"{args.seconds:.0f} s per endpoint; PostgreSQL"
    )
    for name, key in (("POST /oauth/token", "token"), ("GET /api/v1/bench/patients/?limit=50", "read")):
        figures = result[key]
        print(
            f"{name:<40} {figures['rps']:8.1f} req/s   p50 {figures['p50']:6.1f} ms   p99 {figures['p99']:6.1f} ms"
            f"   errors {figures['errors']}"
        )


def measure(database_url: str, *, seconds: float = 10.0, threads: int = 8, workers: int = 2) -> dict:
    """Token endpoint and Data API read requests/s against gunicorn on `database_url` (migrated here)."""
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": "1", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    client_id, secret = _setup(env)
    load = argparse.Namespace(seconds=seconds, threads=threads)
    with serve(BASE_DIR, env, workers=workers) as url:
        token_result = _load(
            lambda s: s.post(
                f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
            ),
            load,
        )
        headers = {"Authorization": f"Bearer {token(url, client_id, secret)}"}
        read_result = _load(
            lambda s: s.get(f"{url}/api/v1/bench/patients/?limit=50", headers=headers, timeout=10), load
        )
    return {"gunicorn_workers": workers, "client_threads": threads, "token": token_result, "read": read_result}


@contextlib.contextmanager
def serve(
    tree: Path, env: dict, *, workers: int = 2, threads: int | None = None, timeout: int | None = None
) -> Iterator[str]:
    """gunicorn serving the checkout at `tree` with `env` as production does (DEBUG off, no query log, no debug
    pages; plain HTTP on loopback); yields its URL, and stops it on the way out. With `threads`, gthread
    workers of that many threads (as docker-compose runs the portal), else sync workers. `timeout` is
    gunicorn's worker timeout (its default, 30 s, when None)."""
    from cryptography.fernet import Fernet

    env = {
        **env,
        "DEBUG": "0",
        "SECRET_KEY": env.get("SECRET_KEY") or "bench-only-" + "x" * 50,
        "FIELD_ENCRYPTION_KEYS": env.get("FIELD_ENCRYPTION_KEYS") or Fernet.generate_key().decode(),
        "SECURE_SSL_REDIRECT": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    port = _free_port()
    gunicorn = [str(Path(sys.executable).parent / "gunicorn"), "integration_tools.wsgi"]
    gunicorn += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"]
    if threads:
        gunicorn += ["--worker-class", "gthread", "--threads", str(threads)]
    if timeout is not None:
        gunicorn += ["--timeout", str(timeout)]
    server = subprocess.Popen(gunicorn, cwd=tree, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def token(url: str, client_id: str, secret: str) -> str:
    """A client-credentials access token from the portal at `url`."""
    response = requests.post(
        f"{url}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
    )
    response.raise_for_status()
    return response.json()["access_token"]


def _load(send, args, ok: int = 200) -> dict:
    """Call send(session) from args.threads threads for args.seconds: requests/s, latency (ms), answers other
    than `ok`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def worker():
        session = requests.Session()
        local, local_errors = [], 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = send(session)
            local.append((time.perf_counter() - started) * 1000)
            if response.status_code != ok:
                local_errors += 1
        with lock:
            latencies.extend(local)
            errors[0] += local_errors

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "p50": round(statistics.median(latencies), 2),
        "p99": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 2),
        "errors": errors[0],
    }


def _setup(env: dict) -> tuple[str, str]:
    """Create the bench environment with 100 patients and a client; return its client_id and a fresh secret."""
    script = """
import json
from environments.models import Environment
from environments.tests.factories import make_environment
from environments.records import create_record
from credentials.services import create_client, create_credential
from credentials.models import Client
env = Environment.objects.filter(slug="bench").first() or make_environment("bench")
for n in range(100 - env.records.filter(data_type="patients").count()):
    create_record(env, "patients", {"first_name": f"P{n}", "last_name": "Bench"})
client = Client.objects.filter(environment=env, name="Bench").first() or create_client(env, "Bench", ["patients:read"])
_, secret = create_credential(client, "bench run")
print(json.dumps([client.client_id, secret]))
"""
    output = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=BASE_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    import json

    client_id, secret = json.loads(output.strip().splitlines()[-1])
    return client_id, secret


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    for _ in range(300):
        try:
            requests.get(f"{url}/healthz", timeout=2)
            return
        except requests.RequestException:
            # Refused while it binds, or slow to answer its first request on a busy machine.
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


if __name__ == "__main__":
    main()
