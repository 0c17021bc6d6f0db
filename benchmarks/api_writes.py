"""Data API create throughput (POST /api/v1/<env>/patients/, requests/s) with concurrent writers against gunicorn,
for this checkout and, when given, another one (a baseline) measured in the same run.

Each checkout is served by its own gunicorn (cwd that tree, 2 workers) on its own migrated PostgreSQL database.
Two environments in each: one with a webhook subscribed to `patients.created` (at a real receiver; no worker
runs, so what is measured is the write, its event and its fan-out, not the sending), one with no webhook.
Measurements alternate baseline / this tree, `rounds` times, so a noisy machine weighs on both alike.

Where the checkout has an event stream (environments/stream.py), its sequencer runs beside the writers as beat
runs it in production (every EVENT_SEQUENCE_SECONDS): placing events is part of what writes with positions cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from benchmarks.api_throughput import _load, serve, token
from benchmarks.database import ensure_database

VARIANTS = {"webhook": "bench-writes-hook", "no_webhook": "bench-writes-plain"}

_SETUP = """
import json
from credentials.services import create_client, create_credential
from environments.models import Environment
from environments.tests.factories import make_environment
from webhooks.models import Webhook
from webhooks.tests.factories import make_webhook
clients = {}
for slug, hooked in ((%(hook)r, True), (%(plain)r, False)):
    env = Environment.objects.filter(slug=slug).first() or make_environment(slug)
    if hooked and not Webhook.objects.filter(environment=env).exists():
        make_webhook(env, %(url)r, event_types=["patients.created"], name="bench")
    client = create_client(env, "Writer", ["patients:write"])
    clients[slug] = [client.client_id, create_credential(client, "bench run")[1]]
print(json.dumps(clients))
"""

# Beat's sequencer, as a loop of its own: the same function beat's task calls, at beat's interval.
_SEQUENCER = """
import time
from django.conf import settings
from environments.stream import sequence_all
while True:
    sequence_all()
    time.sleep(settings.EVENT_SEQUENCE_SECONDS)
"""


def measure(
    trees: dict[str, Path],
    env_for,
    receiver_url: str,
    *,
    seconds: float,
    threads: int = 8,
    workers: int = 2,
    rounds: int = 2,
    sequencer: bool = True,
) -> dict:
    """Create requests/s for each tree in `trees` (name -> checkout), with and without a webhook.

    `env_for(name)` gives the environment variables (database, broker, production settings) of that tree's
    portal; its database is created and migrated here."""
    clients = _prepare(trees, env_for, receiver_url)
    load = argparse.Namespace(seconds=seconds, threads=threads)
    samples: dict[str, dict[str, list[dict]]] = {name: {variant: [] for variant in VARIANTS} for name in trees}
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(serve(tree, env_for(name), workers=workers)) for name, tree in trees.items()}
        for name, tree in trees.items():
            if sequencer and (tree / "environments" / "stream.py").exists():
                stack.enter_context(_sequencing(tree, env_for(name)))
        tokens = {
            (name, variant): token(urls[name], *clients[name][slug])
            for name in trees
            for variant, slug in VARIANTS.items()
        }
        for _ in range(rounds):
            for variant, slug in VARIANTS.items():
                for name in trees:
                    send = _creator(urls[name], slug, tokens[(name, variant)])
                    samples[name][variant].append(_load(send, load, ok=201))
    figures = _figures(samples, threads=threads, workers=workers, rounds=rounds, seconds=seconds)
    figures["sequencer"] = sequencer
    return figures


def _prepare(trees: dict[str, Path], env_for, receiver_url: str) -> dict[str, dict[str, list[str]]]:
    """Migrate each tree's database and set up its environments and clients, the trees side by side."""
    clients: dict[str, dict[str, list[str]]] = {}
    failures: list[BaseException] = []

    def prepare(name: str, tree: Path) -> None:
        try:
            env = env_for(name)
            ensure_database(env["DATABASE_URL"])
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=tree, env=env, check=True)
            script = _SETUP % {"hook": VARIANTS["webhook"], "plain": VARIANTS["no_webhook"], "url": receiver_url}
            output = subprocess.run(
                [sys.executable, "manage.py", "shell", "-v0", "-c", script],
                cwd=tree,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            clients[name] = json.loads(output.strip().splitlines()[-1])
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            failures.append(error)

    preparing = [threading.Thread(target=prepare, args=(name, tree)) for name, tree in trees.items()]
    for thread in preparing:
        thread.start()
    for thread in preparing:
        thread.join()
    if failures:
        raise failures[0]
    return clients


@contextlib.contextmanager
def _sequencing(tree: Path, env: dict) -> Iterator[None]:
    process = subprocess.Popen([sys.executable, "manage.py", "shell", "-v0", "-c", _SEQUENCER], cwd=tree, env=env)
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _creator(url: str, slug: str, access_token: str):
    headers = {"Authorization": f"Bearer {access_token}"}
    endpoint = f"{url}/api/v1/{slug}/patients/"
    body = {"fields": {"first_name": "Writer", "last_name": "Bench", "status": "active"}}
    return lambda session: session.post(endpoint, json=body, headers=headers, timeout=10)


def _figures(samples: dict, *, threads: int, workers: int, rounds: int, seconds: float) -> dict:
    result: dict = {"client_threads": threads, "gunicorn_workers": workers, "rounds": rounds}
    result["seconds_per_measurement"] = seconds
    for name, variants in samples.items():
        result[name] = {
            variant: {
                "rps": round(statistics.mean(run["rps"] for run in runs), 1),
                "rps_by_round": [run["rps"] for run in runs],
                "p50_ms": round(statistics.mean(run["p50"] for run in runs), 1),
                "p99_ms": round(max(run["p99"] for run in runs), 1),
                "errors": sum(run["errors"] for run in runs),
            }
            for variant, runs in variants.items()
        }
    if "base" in samples and "new" in samples:
        result["ratio"] = {
            variant: round(result["new"][variant]["rps"] / result["base"][variant]["rps"], 3)
            for variant in VARIANTS
            if result["base"][variant]["rps"]
        }
        result["holds"] = len(result["ratio"]) == len(VARIANTS) and all(r >= 0.9 for r in result["ratio"].values())
    else:
        result["ratio"] = None
        result["holds"] = None
    result["bar"] = "creates/s with 8 writers >= 0.9 x the baseline's (1f1ae2c), with and without a webhook"
    return result
