"""The log as `make run` writes it: a refused request (403) is one line saying who was refused what and why."""

import subprocess
import sys

import pytest
import requests

from conftest import BASE_DIR, free_port, log_in_over_http, subprocess_env, wait_for
from environments.tests.factories import PASSWORD, grant, make_environment, make_user


@pytest.fixture
def dev_server(transactional_db, tmp_path):
    """The development server `make run` starts (DEBUG on), against the test database; yields (URL, its log)."""
    port, log_path = free_port(), tmp_path / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=BASE_DIR,
            env=subprocess_env(DEBUG="1"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return requests.get(f"{url}/healthz", timeout=2).ok
        except requests.RequestException:
            return False  # refused while it binds, or slow to answer its first request on a busy machine

    try:
        wait_for(ready, timeout=60, message="the development server to answer")
        yield url, log_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_refused_request_is_logged_once_without_a_traceback_naming_who_what_and_why(dev_server):
    url, log_path = dev_server
    grant(make_user("vera"), make_environment("clinic"), "viewer")
    session = log_in_over_http(url, "vera", PASSWORD)

    refused = session.get(f"{url}/e/clinic/webhooks/new/", timeout=5)
    assert refused.status_code == 403
    assert session.get(f"{url}/healthz", timeout=5).ok  # a request after it, so its log lines are written

    log = wait_for(lambda: "GET /healthz" in (text := log_path.read_text()) and text, timeout=10, message="the log")
    forbidden = [line for line in log.splitlines() if "Forbidden" in line]
    assert forbidden == [forbidden[0]], log
    assert "/e/clinic/webhooks/new/" in forbidden[0]
    assert "vera" in forbidden[0] and "Viewers can look but not change" in forbidden[0]
    assert "WARNING" in forbidden[0]
    assert "Traceback" not in log and "PermissionDenied" not in log
