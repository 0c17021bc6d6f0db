"""Run the portal, a Celery worker and Celery beat together, as `make run` does, and keep them running.

The worker and beat are restarted whenever they exit, with the reason on the console; the
portal (Django's runserver) is the foreground process: when it stops, everything stops.
Ctrl-C or SIGTERM stops all three. Used by scripts/run; `python scripts/supervise.py PORT`.

A process that keeps dying at once is restarted after a growing pause (1 s doubling up to
30 s), so a broken configuration does not spin the CPU; a process that ran for a minute
starts again after 1 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PID_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")) / "run"
QUICK_EXIT_SECONDS = 60
MAX_PAUSE_SECONDS = 30.0


def say(message: str) -> None:
    print(f"[make run] {time.strftime('%H:%M:%S')} {message}", flush=True)


@dataclass
class Child:
    """One supervised process: what to run and, while it runs, its process."""

    name: str
    command: list[str]
    restart: bool
    # What stops while it is down, for the console line that says it exited.
    while_down: str = ""
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    pause: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        # Its own process group, so a stop reaches the worker's pool children too.
        self.process = subprocess.Popen(
            self.command, cwd=BASE_DIR, start_new_session=True, preexec_fn=_die_with_supervisor
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        # Where ops (and the tests) find each process: var/run/<name>.pid.
        PID_DIR.mkdir(parents=True, exist_ok=True)
        (PID_DIR / f"{self.name}.pid").write_text(f"{self.process.pid}\n")

    def stop(self, deadline: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def _die_with_supervisor() -> None:
    """In the child, before it runs: on Linux, be sent SIGTERM if the supervisor dies without stopping it
    (SIGKILL, OOM), so no worker or portal outlives it holding the port and the queue."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def children(port: str) -> list[Child]:
    python = str(VENV_BIN / "python")
    celery = [python, "-m", "celery", "-A", "integration_tools"]
    var = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
    schedule = os.environ.get("CELERY_BEAT_SCHEDULE_FILENAME", str(var / "celerybeat-schedule"))
    return [
        Child(
            "worker",
            [*celery, "worker", "--loglevel=INFO"],
            restart=True,
            while_down="nothing is sent while it is down (its work waits in the database)",
        ),
        Child(
            "beat",
            [*celery, "beat", "--loglevel=INFO", "--schedule", schedule],
            restart=True,
            while_down="deliveries still go, but retries, sweeps, heartbeats and notifications wait for it",
        ),
        # No autoreload: the worker and beat do not reload either, and its file watcher costs CPU the worker needs.
        Child("portal", [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], restart=False),
    ]


def describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def supervise(port: str) -> int:
    stopping = False

    def request_stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    # Closing the terminal (SIGHUP) stops everything too, rather than leaving the children running unseen.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    running = children(port)
    for child in running:
        child.start()
    exit_code = 0
    try:
        while not stopping:
            time.sleep(0.2)
            now = time.monotonic()
            for child in running:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        child.restarts += 1
                        say(f"starting the {child.name} again (restart {child.restarts})")
                        child.start()
                    continue
                code = child.process.poll()
                if code is None:
                    continue
                if not child.restart:
                    say(f"the {child.name} {describe_exit(code)}; stopping the worker and beat")
                    exit_code = code or 0
                    stopping = True
                    break
                ran_for = now - child.started_at
                child.pause = 1.0 if ran_for >= QUICK_EXIT_SECONDS else min(child.pause * 2, MAX_PAUSE_SECONDS)
                say(
                    f"the {child.name} {describe_exit(code)} after {ran_for:.0f} s; {child.while_down}; "
                    f"it is restarted in {child.pause:.0f} s"
                )
                child.restart_at = now + child.pause
    finally:
        say("stopping the portal, the worker and beat")
        deadline = time.monotonic() + 20
        for child in running:
            child.stop(deadline)
    return exit_code


if __name__ == "__main__":
    sys.exit(supervise(sys.argv[1] if len(sys.argv) > 1 else "8000"))
