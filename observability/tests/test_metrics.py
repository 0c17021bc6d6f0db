"""GET /metrics: Prometheus' text format, read from the database, for a scraper with the token."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from credentials.models import AuthFailure
from environments.models import WorkerHeartbeat
from observability.models import BeatRun

from .conftest import TOKEN

pytestmark = pytest.mark.django_db


def scrape(client, token=TOKEN, **extra) -> dict:
    """{(sample name, frozenset of labels): value} of one scrape."""
    answer = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}", **extra)
    assert answer.status_code == 200, answer.content
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.content.decode())
        for sample in family.samples
    }


def of(samples: dict, name: str, **labels) -> float:
    return samples[(name, frozenset({key: str(value) for key, value in labels.items()}.items()))]


def test_without_the_token_metrics_are_refused_with_401(client):
    answer = client.get("/metrics")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401


def test_with_no_token_nor_network_configured_metrics_are_off(client, settings):
    settings.METRICS_TOKEN = ""
    answer = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")
    assert answer.status_code == 403
    assert b"METRICS_TOKEN" in answer.content


def test_an_allowed_network_may_scrape_without_the_token(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 401  # elsewhere: the token still works
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403


def test_deliveries_waiting_oldest_due_and_attempts_per_webhook(client, seeded):
    samples = scrape(client)
    ehr, lab, paused = (str(seeded[name].pk) for name in ("ehr", "lab", "paused"))
    assert of(samples, "integration_webhook_deliveries_waiting", environment="clinic", webhook=ehr) == 2
    assert 595 <= of(samples, "integration_webhook_oldest_due_seconds", environment="clinic", webhook=ehr) <= 660
    # A paused webhook keeps its deliveries on purpose: nothing of it is due.
    assert of(samples, "integration_webhook_oldest_due_seconds", environment="clinic", webhook=paused) == 0
    assert (
        of(samples, "integration_webhook_attempts_total", environment="clinic", webhook=ehr, outcome="succeeded") == 2
    )
    assert of(samples, "integration_webhook_attempts_total", environment="clinic", webhook=ehr, outcome="failed") == 1
    # Deliveries attempted in the last minutes, by their status now (the pending one was never attempted).
    for status, n in (("succeeded", 2), ("retrying", 1), ("failed", 1)):
        assert of(samples, "integration_deliveries_window", environment="clinic", status=status) == n


def test_webhooks_by_condition_and_how_long_one_has_been_failing(client, seeded):
    samples = scrape(client)
    lab = str(seeded["lab"].pk)
    counts = {
        c: of(samples, "integration_webhooks", environment="clinic", condition=c)
        for c in ("active", "failing", "paused", "disabled", "unverified")
    }
    assert counts == {"active": 1, "failing": 1, "paused": 1, "disabled": 0, "unverified": 0}
    assert of(samples, "integration_webhook_condition", environment="clinic", webhook=lab, condition="failing") == 1
    assert 7190 <= of(samples, "integration_webhook_failing_seconds", environment="clinic", webhook=lab) <= 7300


def test_error_classes_and_the_histograms_over_the_last_minutes(client, seeded):
    samples = scrape(client)
    assert of(samples, "integration_attempt_errors_window", environment="clinic", error_class="http_5xx") == 1
    assert of(samples, "integration_attempt_errors_window", environment="clinic", error_class="connection_refused") == 1
    duration = "integration_attempt_duration_seconds_bucket"
    assert of(samples, duration, environment="clinic", le="0.1") == 3  # 80, 80 and 3 ms
    assert of(samples, duration, environment="clinic", le="+Inf") == 4
    assert of(samples, "integration_attempt_duration_seconds_gcount", environment="clinic") == 4
    delay = "integration_event_to_receipt_seconds_bucket"
    assert of(samples, delay, environment="clinic", le="0.5") == 1  # received 0.3 s after its event
    assert of(samples, delay, environment="clinic", le="5.0") == 2
    assert of(samples, "integration_event_to_receipt_seconds_gsum", environment="clinic") == pytest.approx(4.3)


def test_tokens_workers_and_beat(client, seeded):
    from django.utils import timezone

    AuthFailure.objects.create(environment=seeded["env"], reason=AuthFailure.Reason.THROTTLED, ip="192.0.2.1")
    AuthFailure.objects.create(environment=seeded["env"], reason=AuthFailure.Reason.UNKNOWN_CLIENT, ip="192.0.2.1")
    samples = scrape(client)
    assert of(samples, "integration_tokens_throttled_total", environment="clinic") == 1
    assert of(samples, "integration_tokens_failed_total", environment="clinic") == 1
    assert of(samples, "integration_worker_heartbeat_age_seconds") == float("inf")  # none ever reported
    WorkerHeartbeat.objects.create(hostname="w1", last_seen=timezone.now())
    BeatRun.objects.create(task="webhooks.sweep", last_run_at=timezone.now())
    samples = scrape(client)
    assert of(samples, "integration_workers_alive") == 1
    assert of(samples, "integration_worker_heartbeat_age_seconds") < 5
    assert of(samples, "integration_beat_last_run_timestamp_seconds", task="webhooks.sweep") == pytest.approx(
        timezone.now().timestamp(), abs=5
    )


def test_data_api_requests_are_counted_by_status(client):
    def count(status: int) -> float:
        return scrape(client).get(("integration_dataapi_requests_total", frozenset({"status": str(status)}.items())), 0)

    status = client.get("/api/v1/environments/clinic/records/patients").status_code
    before = count(status)
    assert client.get("/api/v1/environments/clinic/records/patients").status_code == status
    assert count(status) == before + 1


def test_labels_carry_no_url_nor_name(client, seeded):
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "127.0.0.1:9999" not in text and "EHR bridge" not in text
