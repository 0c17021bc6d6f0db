"""`make run` driven from outside, as a new user drives it: shared by its soak test and `make bench`.

`MakeRun` runs `scripts/run` itself in a fresh folder on a free port (SQLite, the embedded
broker, the supervised worker and beat); `produce` writes records through the Data API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from conftest import free_port, log_in_over_http

BASE_DIR = Path(__file__).resolve().parent.parent.parent
BANNER = "Background worker not running: nothing is being sent"
PASSWORD = "soak-test-password-1"  # noqa: S105 - a throwaway admin of a throwaway portal
# What a user's shell passes on; anything else (a test's or the benchmark's DATABASE_URL, DEBUG=0) is left out.
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHON", "USER")


class MakeRun:
    """`scripts/run` in its own folder and port; `manage(...)` runs a command against the same portal."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {key: os.environ[key] for key in PASSED_ON if key in os.environ}
        # make run's own defaults, with heartbeats often enough that a test sees a silence in seconds.
        self.env = {
            **env,
            "VAR_DIR": str(folder),
            "PORT": str(self.port),
            "DEMO_ADMIN_PASSWORD": PASSWORD,
            "WORKER_HEARTBEAT_SECONDS": "0.5",
            "WORKER_SILENT_AFTER_SECONDS": "1.5",
            # What scripts/run sets for its own processes, for the commands run beside it.
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        }
        self.log_path = folder / "make-run.log"

    def start(self) -> None:
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            ["bash", "scripts/run"],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while not self.serving():
            if time.monotonic() > deadline:
                raise AssertionError(f"make run did not serve within 180 s:\n{self.console()[-3000:]}")
            time.sleep(0.5)

    def serving(self) -> bool:
        assert self.process.poll() is None, self.console()
        return self.answers()

    def answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).ok
        except requests.RequestException:
            return False

    def console(self) -> str:
        return self.log_path.read_text()

    def token(self, scope: str = "patients:write") -> str:
        """A new client, credential and access token in sandbox-test, made as ops and integrators make them."""
        client = self.manage("create_client", "Producer", "--environment", "sandbox-test", "--scope", scope)
        secret = self.manage("create_credential", client["client_id"], "--name", "producer")["client_secret"]
        return requests.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], secret),
            timeout=10,
        ).json()["access_token"]

    def webhook(self, url: str) -> dict:
        return self.manage(
            "create_webhook",
            "--environment",
            "sandbox-test",
            "--name",
            "Receiver",
            "--url",
            url,
            "--events",
            "patients.created",
        )

    def manage(self, *args: str) -> dict:
        done = subprocess.run(
            [str(BASE_DIR / ".venv" / "bin" / "python"), "manage.py", *args, "--json"],
            cwd=BASE_DIR,
            env={**self.env, "DEBUG": "1"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def pid(self, name: str) -> int:
        return int((self.folder / "run" / f"{name}.pid").read_text())

    def stop(self) -> None:
        if not hasattr(self, "process"):
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops it
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def logged_in(portal: MakeRun) -> requests.Session:
    """The demo's admin, logged in to this portal."""
    return log_in_over_http(portal.url, "admin", PASSWORD)


def produce(
    portal: MakeRun,
    token: str,
    producer: int,
    made: list,
    errors: list,
    *,
    share: int,
    bursts: int,
    seconds: float,
    started: float,
) -> None:
    """Write this producer's `share` of records through the Data API in `bursts` spread over `seconds`."""
    per_burst = -(-share // bursts)
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        written = 0
        for burst in range(bursts):
            # Each producer bursts at its own moment within the burst's slot, so bursts overlap.
            time.sleep(max(0.0, started + burst * seconds / bursts + producer * 0.4 * min(1.0, seconds) - time.time()))
            for _ in range(min(per_burst, share - written)):
                try:
                    response = session.post(
                        f"{portal.url}/api/v1/sandbox-test/patients/",
                        json={"fields": {"first_name": f"P{producer}", "last_name": f"N{written}"}},
                        timeout=30,
                    )
                except requests.RequestException as error:
                    errors.append(f"producer {producer}: {error}")
                    return
                if response.status_code != 201:
                    errors.append(f"{response.status_code} {response.text[:200]}")
                    continue
                made.append(response.json()["id"])
                written += 1
