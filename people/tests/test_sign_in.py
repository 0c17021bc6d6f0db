"""Signing in: the throttle that cannot be used to lock anyone out, the record of attempts, the audit."""

import pytest
from django.urls import reverse

from environments.models import AuditEvent
from environments.tests.factories import PASSWORD, make_user
from people.models import SignInAttempt

pytestmark = pytest.mark.django_db

ATTACKER, REAL = "203.0.113.9", "198.51.100.7"


def sign_in(client, username, password, ip):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_right_password_signs_in_and_is_recorded_and_audited(client):
    user = make_user("ana")
    answer = sign_in(client, "ana", PASSWORD, REAL)
    assert answer.status_code == 302
    attempt = SignInAttempt.objects.get()
    assert (attempt.user, attempt.ip, attempt.succeeded) == (user, REAL, True)
    assert AuditEvent.objects.filter(action="sign_in.succeeded", actor_label="ana", ip=REAL).count() == 1


def test_after_five_failures_that_address_is_refused_without_checking_the_password(client, settings):
    make_user("ana")
    for _ in range(5):
        assert sign_in(client, "ana", "wrong", ATTACKER).status_code == 200
    refused = sign_in(client, "ana", PASSWORD, ATTACKER)
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    # The refusal is not a failure: it is not counted, and the right password was not even tried.
    assert SignInAttempt.objects.filter(succeeded=False).count() == 5
    assert not SignInAttempt.objects.filter(succeeded=True).exists()


def test_fifty_wrong_passwords_from_one_address_do_not_stop_the_person_from_another(client):
    make_user("ana")
    for _ in range(50):
        sign_in(client, "ana", "wrong", ATTACKER)
    assert sign_in(client, "ana", PASSWORD, REAL).status_code == 302


def test_guessing_from_many_addresses_is_refused_only_where_it_failed(client, settings):
    settings.LOGIN_MAX_FAILURES_PER_ACCOUNT = 6
    make_user("ana")
    for n in range(6):
        sign_in(client, "ana", "wrong", f"203.0.113.{n}")
    # Past the account's total, an address that failed for it is refused even with one failure of its own...
    assert sign_in(client, "ana", PASSWORD, "203.0.113.0").status_code == 429
    # ...but an address that has not failed is never refused.
    assert sign_in(client, "ana", PASSWORD, REAL).status_code == 302


def test_failures_are_summarised_in_the_audit_trail_not_written_one_row_each(client):
    make_user("ana")
    for _ in range(50):
        sign_in(client, "ana", "wrong", ATTACKER)
    rows = AuditEvent.objects.filter(action__startswith="sign_in.", ip=ATTACKER).order_by("id")
    # The first failure, then the 1st and 10th refusal of the window: each with the count so far.
    assert [(row.action, row.details["in_window_so_far"]) for row in rows] == [
        ("sign_in.failed", 1),
        ("sign_in.refused", 1),
        ("sign_in.refused", 10),
    ]


def test_a_new_made_up_username_each_attempt_still_adds_only_a_few_audit_rows(client, settings):
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 86400  # windows are aligned to the epoch: one day holds the test
    for n in range(60):
        sign_in(client, f"made-up-{n}", "wrong", ATTACKER)
    rows = AuditEvent.objects.filter(action__startswith="sign_in.", ip=ATTACKER).order_by("id")
    # Names that are no account count as one: 30 failures (the address's limit), then 30 refusals.
    assert [(row.action, row.target_label, row.details["in_window_so_far"]) for row in rows] == [
        ("sign_in.failed", "(no such account)", 1),
        ("sign_in.failed", "(no such account)", 10),
        ("sign_in.refused", "(no such account)", 1),
        ("sign_in.refused", "(no such account)", 10),
    ]
    assert rows[1].details["username"] == "made-up-9"  # each row still names the one tried


def test_a_deactivated_person_cannot_sign_in(client):
    user = make_user("ana")
    user.is_active = False
    user.save()
    assert sign_in(client, "ana", PASSWORD, REAL).status_code == 200
    assert SignInAttempt.objects.get().succeeded is False
