"""A real Prometheus (Debian's package) scrapes a live portal and evaluates the shipped alert rules."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from conftest import BASE_DIR, free_port, wait_for

from .conftest import TOKEN

RULES = BASE_DIR / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = BASE_DIR / "deploy" / "grafana" / "integration-tools.json"


def binary(name: str) -> str:
    """The path of Debian's `prometheus` or `promtool`: missing fails CI (scripts/system-packages installs it)."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed: run scripts/system-packages (Debian's prometheus package)"
        if os.environ.get("CI") or os.environ.get("REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_promtool_accepts_the_shipped_alert_rules():
    checked = subprocess.run([binary("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout


class Prometheus:
    """A Prometheus server on loopback scraping one portal every second, with the shipped rules' expressions."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = yaml.safe_load(RULES.read_text())
        for rule in rules["groups"][0]["rules"]:
            rule["for"] = "0s"  # the shipped expressions, without waiting minutes for them to hold
        (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(tmp_path / "rules.yml")],
            "scrape_configs": [
                {
                    "job_name": "integration-tools",
                    "authorization": {"credentials": TOKEN},
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expression: str) -> list[dict]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=5).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expression: str) -> float | None:
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> set[tuple[str, str]]:
        """(alert name, webhook id or '') of every alert firing now."""
        alerts = self.query('ALERTS{alertstate="firing"}')
        return {(each["metric"]["alertname"], each["metric"].get("webhook", "")) for each in alerts}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


@pytest.fixture
def prometheus(tmp_path, live_server):
    server = Prometheus(tmp_path, urlsplit(live_server.url).netloc)
    try:
        wait_for(lambda: _ready(server), timeout=30, message="prometheus to be ready")
        yield server
    finally:
        server.stop()


def _ready(server: Prometheus) -> bool:
    assert server.process.poll() is None, Path(server.log.name).read_text()[-2000:]
    try:
        return requests.get(f"{server.url}/-/ready", timeout=1).ok
    except requests.ConnectionError:
        return False


@pytest.mark.django_db(transaction=True)
def test_prometheus_scrapes_the_portal_and_the_shipped_rules_fire(seeded, prometheus, start_worker):
    ehr, lab = str(seeded["ehr"].pk), str(seeded["lab"].pk)
    wait_for(lambda: prometheus.value('up{job="integration-tools"}') == 1, timeout=30, message="a first scrape")
    assert prometheus.value(f'integration_webhook_deliveries_waiting{{webhook="{ehr}"}}') == 2
    outcomes = {
        each["metric"]["status"]: float(each["value"][1])
        for each in prometheus.query('sum by (status) (integration_deliveries_window{environment="clinic"})')
    }
    assert outcomes == {"succeeded": 2, "retrying": 1, "failed": 1}
    assert 590 <= prometheus.value(f'integration_webhook_oldest_due_seconds{{webhook="{ehr}"}}') <= 700
    expected = {
        ("WebhookFailingForAnHour", lab),
        ("WebhookDeliveryOverdue", ehr),
        ("NoWorkerHeartbeat", ""),  # no worker has ever reported
        ("BeatNotRunning", ""),  # nor has beat run
    }
    wait_for(lambda: expected <= prometheus.firing(), timeout=30, message=f"{expected} to fire")
    assert ("WebhookFailingForAnHour", ehr) not in prometheus.firing()

    # A worker with beat: its heartbeats and beat's runs reach Prometheus, and both alerts end.
    start_worker()
    wait_for(lambda: prometheus.value("integration_workers_alive") == 1, timeout=60, message="a worker heartbeat")
    sweep = 'integration_beat_last_run_timestamp_seconds{task="webhooks.sweep"}'
    wait_for(lambda: prometheus.value(sweep), timeout=60, message="beat's sweep")
    assert time.time() - prometheus.value(sweep) < 30
    ended = {("NoWorkerHeartbeat", ""), ("BeatNotRunning", "")}
    wait_for(lambda: not ended & prometheus.firing(), timeout=30, message="the worker and beat alerts to end")

    # Every panel of the shipped dashboard is a query this Prometheus accepts (query() asserts its success).
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel["targets"]:
            expression = target["expr"].replace("$environment", ".*")
            assert prometheus.query(expression) is not None, f"{panel['title']}: {expression}"
