"""Test fixtures shared by every app: real services, a real worker, a real browser.

Nothing we own is mocked. When a service the run is configured for is
unreachable, the run fails: it never skips.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; the ORM calls
# that the tests make around it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

BASE_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="session", autouse=True)
def broker_is_reachable():
    """Fail the whole run at once when the configured Redis is down."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    if url.startswith("redis://"):
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError as error:
            pytest.exit(f"Redis at {url} is unreachable ({error}); start it or fix CELERY_BROKER_URL", returncode=3)
    elif os.environ.get("REQUIRE_SERVICES"):
        pytest.exit(f"REQUIRE_SERVICES is set but CELERY_BROKER_URL is {url!r}, not Redis", returncode=3)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Check that CI really runs on PostgreSQL when it says it does."""
    from django.db import connection

    if os.environ.get("REQUIRE_SERVICES") and connection.vendor != "postgresql":
        pytest.exit("REQUIRE_SERVICES is set but DATABASE_URL is not PostgreSQL", returncode=3)
    yield


def database_url_for_subprocess() -> str:
    """A DATABASE_URL that points another process at the test database."""
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on at `host` right now, for a server a test starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_in_over_http(base_url: str, username: str, password: str):
    """A requests session logged in to a portal served by another process (gunicorn, runserver, make run)."""
    import requests

    session = requests.Session()
    form = session.get(f"{base_url}/login/", timeout=10).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    answer = session.post(
        f"{base_url}/login/",
        data={"csrfmiddlewaretoken": token, "username": username, "password": password},
        headers={"Referer": f"{base_url}/login/"},
        timeout=10,
    )
    assert answer.history and answer.history[0].status_code == 302, f"not logged in: {answer.text[:300]}"
    assert answer.ok and "/login/" not in answer.url, f"not logged in: {answer.text[:300]}"
    return session


def subprocess_env(**extra: str) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "DEBUG": "1", **extra}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def manage_py(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """Run `manage.py` in its own process against the test database, as ops and cron do (exit code, output)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=subprocess_env(**extra_env),
        capture_output=True,
        text=True,
        timeout=60,
    )


# Settings every test worker needs: webhooks may reach receivers on 127.0.0.1, and
# lost tasks are swept up within seconds instead of a minute.
WORKER_TEST_ENV = {
    "WORKER_HEARTBEAT_SECONDS": "1",
    "WEBHOOK_ALLOW_HTTP": "1",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "WEBHOOK_SWEEP_SECONDS": "1",
    "WEBHOOK_REQUEUE_AFTER_SECONDS": "2",
    "WEBHOOK_LEASE_MARGIN_SECONDS": "1",
    # A worker started after a killed one (which could not give the beat lease up) takes beat over in seconds.
    "BEAT_LEASE_SECONDS": "3",
}


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    kill_process_group(process)


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL a worker and its pool children at once, as a crash or an OOM kill would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def start_worker(transactional_db, tmp_path):
    """Start real Celery workers (with beat) on the real broker, against the test database.

    Returns a function; each call starts one more worker. All are stopped at teardown.
    """
    from django.conf import settings

    from integration_tools.celery import app

    app.control.purge()
    started = []

    def start(
        *, beat: bool = True, ready: bool = True, prefix: tuple[str, ...] = (), **extra_env: str
    ) -> subprocess.Popen:
        """Start a worker; unless `ready=False`, return once it takes tasks (so a test's timings measure
        delivery, not the worker's start). `prefix` runs it through another command (`ip netns exec NAME`)."""
        index = len(started)
        beat_file = str(tmp_path / f"beat-{index}")
        env = subprocess_env(**{**WORKER_TEST_ENV, "CELERY_BEAT_SCHEDULE_FILENAME": beat_file, **extra_env})
        log_path = tmp_path / f"worker-{index}.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
        command = [*prefix, sys.executable, "-m", "celery", "-A", "integration_tools", "worker"]
        command += ["--beat"] if beat else []
        command += ["--loglevel=INFO", "--without-gossip", "--without-mingle"]
        command += ["--hostname", f"test-{os.getpid()}-{index}@%h"]
        # Its own process group, so a test can kill the worker with its pool children as a crash would.
        process = subprocess.Popen(
            command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        process.log_path = log_path
        process.log_file = log
        process.broker_url = settings.CELERY_BROKER_URL
        started.append(process)
        if ready:
            wait_for(
                lambda: process.poll() is not None or " ready." in log_path.read_text(),
                timeout=60,
                message=f"worker {index} to be ready",
            )
            assert process.poll() is None, f"worker {index} exited: {log_path.read_text()[-2000:]}"
        return process

    yield start
    for process in started:
        _stop(process)
        process.log_file.close()


@pytest.fixture
def celery_worker_process(start_worker):
    """One real Celery worker with beat, on the real broker, against the test database."""
    return start_worker()


@contextlib.contextmanager
def gunicorn_serving(arguments: list[str], log_path: Path, *, ready_headers: dict | None = None, **extra_env: str):
    """The portal under gunicorn (its arguments after the app, bound to a free loopback port) against the test
    database (or `extra_env`'s DATABASE_URL, broker, production settings...); yields its base URL once /healthz
    answers (asked with `ready_headers`: production settings redirect plain HTTP), and stops it after."""
    import requests

    port = free_port()
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    command = [str(Path(sys.executable).parent / "gunicorn"), "integration_tools.wsgi", *arguments]
    command += ["--bind", f"127.0.0.1:{port}"]
    process = subprocess.Popen(
        command,
        cwd=BASE_DIR,
        env=subprocess_env(**{**WORKER_TEST_ENV, **extra_env}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return requests.get(f"{url}/healthz", headers=ready_headers, timeout=5).ok
        except requests.RequestException:
            return False

    try:
        wait_for(ready, timeout=60, message="gunicorn to answer")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def wait_for(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


# --- Browser ------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium():
    """Debian's headless Chromium driven by Playwright (test tools cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.fail(f"Chromium is not installed at {path}: run scripts/system-packages")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    context = chromium.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.console_errors = errors
    yield page
    context.close()
