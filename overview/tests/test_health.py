"""The Overview answers "is anything wrong, and what do I do?" with exact figures from seeded data."""

import datetime
import uuid

import pytest
from django.utils import timezone

from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import log_in_director, make_environment
from webhooks.health import summaries
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.rollup import hour_of, roll_up
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def seed_attempt(webhook, *, hours_ago: float, ok: bool, delay_ms: int | None = None):
    """A delivery created `hours_ago` with one attempt; received after `delay_ms` when ok."""
    created = NOW - datetime.timedelta(hours=hours_ago)
    delivery = Delivery.objects.create(
        webhook=webhook,
        environment=webhook.environment,
        message_id=f"msg_{uuid.uuid4().hex}",
        body="{}",
        status=Delivery.Status.SUCCEEDED if ok else Delivery.Status.RETRYING,
        created_at=created,
        delivered_at=created + datetime.timedelta(milliseconds=delay_ms) if ok else None,
        next_attempt_at=None if ok else NOW + datetime.timedelta(hours=1),
        attempt_count=1,
    )
    Attempt.objects.create(
        delivery=delivery,
        webhook=webhook,
        number=1,
        trigger=Attempt.Trigger.SCHEDULED,
        started_at=created,
        duration_ms=delay_ms or 5,
        url=webhook.url,
        status_code=200 if ok else 503,
        succeeded=ok,
    )


@pytest.fixture
def seeded():
    environment = make_environment("clinic")
    healthy = make_webhook(environment, "http://127.0.0.1:9999/a", name="Billing")
    failing = make_webhook(environment, "http://127.0.0.1:9999/b", name="EHR bridge")
    for n in range(1, 21):  # 20 received, delays 100 … 2000 ms, in the last 2 hours
        seed_attempt(healthy, hours_ago=1.5 if n % 2 else 0.5, ok=True, delay_ms=n * 100)
    seed_attempt(healthy, hours_ago=0.5, ok=False)
    for _ in range(4):  # 3 days ago: outside 24 h, inside 7 d
        seed_attempt(healthy, hours_ago=72, ok=False)
    seed_attempt(failing, hours_ago=3.2, ok=True, delay_ms=50)
    for _ in range(3):
        seed_attempt(failing, hours_ago=0.2, ok=False)
    Webhook.objects.filter(pk=failing.pk).update(failing_since=NOW - datetime.timedelta(minutes=12))
    return environment, healthy, failing


def figures(environment):
    return {s.webhook.name: s for s in summaries(environment, NOW)}


def test_rates_percentiles_waiting_and_hours_are_exact(seeded):
    environment, *_ = seeded
    by_name = figures(environment)
    assert list(by_name) == ["EHR bridge", "Billing"]  # what needs attention first

    billing = by_name["Billing"]
    assert (billing.received_24h, billing.failed_24h) == (20, 1)
    assert billing.rate_24h == pytest.approx(20 / 21)
    assert billing.rate_7d == pytest.approx(20 / 25)
    assert billing.p95_24h_ms == 1900  # nearest rank of 100…2000 ms
    assert billing.waiting == 5
    assert len(billing.hours) == 24
    this_hour, last_hour = billing.hours[-1], billing.hours[-2]
    assert billing.hours[-1].hour == hour_of(NOW)
    assert sum(h.succeeded for h in (this_hour, last_hour, billing.hours[-3])) == 20

    bridge = by_name["EHR bridge"]
    assert bridge.next_action == "recover" and billing.next_action == ""
    assert (bridge.received_24h, bridge.failed_24h, bridge.rate_24h) == (1, 3, 0.25)
    assert bridge.p95_24h_ms == 50


def test_delays_count_deliveries_of_the_last_7_days_only(seeded):
    environment, healthy, _ = seeded
    seed_attempt(healthy, hours_ago=3 * 24, ok=True, delay_ms=5_000)  # inside 7 d, outside 24 h
    seed_attempt(healthy, hours_ago=8 * 24, ok=True, delay_ms=60_000)  # older than 7 d
    billing = figures(environment)["Billing"]
    assert billing.p95_24h_ms == 1900, "the 3-day-old delivery is outside 24 h"
    assert billing.p95_7d_ms == 2000, "nearest rank of 21 delays within 7 d; the 8-day-old one is not among them"


def test_rolled_up_hours_give_the_same_figures_as_raw_attempts(seeded):
    environment, *_ = seeded
    before = {name: (s.hours, s.rate_7d, s.rate_24h) for name, s in figures(environment).items()}
    written = roll_up(NOW)
    assert written > 0
    after = {name: (s.hours, s.rate_7d, s.rate_24h) for name, s in figures(environment).items()}
    assert after == before
    assert roll_up(NOW) == 0  # counted once


def test_the_overview_page_shows_what_is_wrong_and_what_to_do(client, seeded):
    environment, _, failing = seeded
    api_client = make_client(environment, name="Lab app")
    make_credential(api_client, name="Old key", expires_at=NOW + datetime.timedelta(days=10))
    log_in_director(client, environment)
    page = client.get("/e/clinic/").content.decode()

    assert page.index("Needs attention") < page.index("EHR bridge")
    assert "failing since" in page and "recover</a>" in page
    assert "credential “Old key” of Lab app expires" in page and "rotate</a>" in page
    assert "Success 24 h / 7 d" in page and "95 % / 80 %" in page
    assert page.count('<g class="hour">') == 24 * 3  # two webhooks and API access
    assert ": 3 received, 0 failed</title>" in page or ": 10 received, 1 failed</title>" in page
    assert f"/e/clinic/webhooks/{failing.pk}/deliveries/?since=" in page


def test_roll_ups_a_minute_apart_top_up_the_open_hour_and_count_each_attempt_once(seeded):
    environment, healthy, _ = seeded
    roll_up(NOW - datetime.timedelta(minutes=40))  # the mark falls inside the last hours
    seed_attempt(healthy, hours_ago=0.3, ok=False)
    before = {name: (s.hours, s.rate_24h) for name, s in figures(environment).items()}
    assert roll_up(NOW) > 0
    after = {name: (s.hours, s.rate_24h) for name, s in figures(environment).items()}
    assert after == before
    assert figures(environment)["Billing"].failed_24h == 2
