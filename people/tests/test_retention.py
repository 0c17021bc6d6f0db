"""Sign-in records are pruned past AUTH_FAILURE_RETENTION_DAYS, but for what a person's page lists and the
throttle counts."""

import datetime

import pytest
from django.utils import timezone

from environments.tests.factories import make_user
from people.models import FailureTally, SignInAttempt
from people.retention import prune_sign_in_records
from people.sign_in import recent_sign_ins, throttle_delay

pytestmark = pytest.mark.django_db
ATTACKER = "203.0.113.9"


def attempts(username: str, count: int, age: datetime.timedelta, now, *, user=None) -> None:
    for n in range(count):
        SignInAttempt.objects.create(
            username=username, user=user, ip=ATTACKER, succeeded=False, at=now - age - datetime.timedelta(minutes=n)
        )


def test_old_attempts_go_but_each_persons_last_twenty_and_the_windows_failures_stay(settings):
    settings.AUTH_FAILURE_RETENTION_DAYS = 30
    now = timezone.now()
    ana = make_user("ana")
    attempts("ana", 25, datetime.timedelta(days=40), now, user=ana)
    attempts("nobody", 7, datetime.timedelta(days=40), now)
    attempts("nobody", settings.LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS, datetime.timedelta(seconds=5), now)
    listed = [attempt.pk for attempt in recent_sign_ins(ana)]

    assert prune_sign_in_records(now, batch=3) == 5 + 7

    assert [attempt.pk for attempt in recent_sign_ins(ana)] == listed and len(listed) == 20
    window_failures = settings.LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS
    assert SignInAttempt.objects.filter(username="nobody").count() == window_failures
    assert throttle_delay("nobody", ATTACKER) > 0


def test_old_failure_tallies_go_and_the_current_windows_stays(settings):
    now = timezone.now()
    for age in (datetime.timedelta(days=31), datetime.timedelta(minutes=5)):
        FailureTally.objects.create(action="sign_in.failed", label="ana", ip=ATTACKER, window_start=now - age, count=3)

    assert prune_sign_in_records(now) == 1
    assert FailureTally.objects.get().window_start == now - datetime.timedelta(minutes=5)
