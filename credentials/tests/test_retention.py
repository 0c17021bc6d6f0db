"""Token endpoint failures are pruned past AUTH_FAILURE_RETENTION_DAYS; what the throttle and Overview read stays."""

import datetime

import pytest
from django.utils import timezone

from credentials.models import AuthFailure
from credentials.retention import prune_auth_failures
from credentials.throttle import throttle_delay
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db
ATTACKER = "203.0.113.66"


def failures(count: int, age: datetime.timedelta, now: datetime.datetime, environment=None) -> None:
    for _ in range(count):
        AuthFailure.objects.create(
            client_id="cli_x", ip=ATTACKER, reason=AuthFailure.Reason.BAD_SECRET, environment=environment, at=now - age
        )


def test_failures_older_than_the_retention_go_in_batches_and_the_throttle_still_refuses(settings):
    settings.AUTH_FAILURE_RETENTION_DAYS = 30
    now = timezone.now()
    failures(5, datetime.timedelta(days=31), now)
    failures(1, datetime.timedelta(days=29), now)
    failures(settings.OAUTH_MAX_FAILURES_PER_CLIENT, datetime.timedelta(seconds=30), now)

    assert prune_auth_failures(now, batch=2) == 5

    assert not AuthFailure.objects.filter(at__lt=now - datetime.timedelta(days=30)).exists()
    assert AuthFailure.objects.count() == 1 + settings.OAUTH_MAX_FAILURES_PER_CLIENT
    assert throttle_delay("cli_x", ATTACKER) > 0  # the window's failures are all still counted


def test_the_shortest_retention_still_keeps_the_day_the_overview_shows(settings):
    settings.AUTH_FAILURE_RETENTION_DAYS = 1
    clinic = make_environment("clinic")
    now = timezone.now()
    failures(2, datetime.timedelta(hours=23), now, clinic)
    failures(3, datetime.timedelta(hours=25), now, clinic)

    assert prune_auth_failures(now) == 3
    assert AuthFailure.objects.count() == 2


def test_beat_prunes_failure_rows_every_hour():
    from integration_tools.celery import app

    app.finalize()
    hourly = {entry["task"] for entry in app.conf.beat_schedule.values() if entry["schedule"] == 3600}
    assert {"credentials.prune_failures", "people.prune_sign_ins", "people.end_lapsed_sessions"} <= hourly
