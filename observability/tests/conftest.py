import datetime

import pytest
from django.utils import timezone

from environments.tests.factories import make_environment
from webhooks.models import Attempt, Delivery, Webhook
from webhooks.tests.factories import make_delivery, make_webhook

TOKEN = "metrics-token-for-tests"


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def attempt(delivery: Delivery, *, ok: bool, ms: int, status: int | None = None, error: str = "", ago_s: float = 60):
    """One attempt row of `delivery`, as the engine records it (its attempt count follows)."""
    Delivery.objects.filter(pk=delivery.pk).update(attempt_count=delivery.attempt_count + 1)
    return Attempt.objects.create(
        delivery=delivery,
        webhook_id=delivery.webhook_id,
        number=delivery.attempt_count + 1,
        trigger=Attempt.Trigger.SCHEDULED,
        started_at=timezone.now() - datetime.timedelta(seconds=ago_s),
        duration_ms=ms,
        url=delivery.webhook.url,
        status_code=status,
        error=error,
        succeeded=ok,
    )


@pytest.fixture
def seeded(db):
    """clinic: `ehr` (2 received, 1 retrying after a 503, 1 pending due 10 minutes ago) and `lab` failing
    since 2 hours after a refused connection; `paused` holds a pending delivery on purpose."""
    env = make_environment("clinic")
    now = timezone.now()
    ehr = make_webhook(env, "http://127.0.0.1:9999/ehr", name="EHR bridge")
    for seconds in (0.3, 4):
        done = make_delivery(
            ehr,
            status="succeeded",
            created_at=now - datetime.timedelta(seconds=70),
            delivered_at=now - datetime.timedelta(seconds=70 - seconds),
        )
        attempt(done, ok=True, status=200, ms=80)
    retrying = make_delivery(ehr, status="retrying", next_attempt_at=now + datetime.timedelta(minutes=5))
    attempt(retrying, ok=False, status=503, ms=1200)
    make_delivery(ehr, status="pending", next_attempt_at=now - datetime.timedelta(minutes=10))
    lab = make_webhook(env, "http://127.0.0.1:9999/lab", name="Lab")
    Webhook.objects.filter(pk=lab.pk).update(failing_since=now - datetime.timedelta(hours=2))
    gone = make_delivery(lab, status="failed")
    attempt(gone, ok=False, error="connection_refused", ms=3)
    paused = make_webhook(env, "http://127.0.0.1:9999/paused", name="Paused")
    Webhook.objects.filter(pk=paused.pk).update(state="paused")
    make_delivery(paused, status="pending", next_attempt_at=now - datetime.timedelta(hours=1))
    return {"env": env, "ehr": ehr, "lab": lab, "paused": paused}
