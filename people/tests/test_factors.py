"""Second factors: what is kept, what MFA_REQUIRED asks, and the second step of signing in."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from conftest import manage_py
from environments.models import AuditEvent
from environments.tests.factories import PASSWORD, make_user
from people.factors import reset_factors
from people.models import RecoveryCode, TotpFactor
from portal.actor import SYSTEM_ACTOR

from .factories import code_at_step, enrol

pytestmark = pytest.mark.django_db


def test_the_authenticator_key_is_encrypted_and_recovery_codes_hashed_at_rest():
    user = make_user("ana")
    phone, codes = enrol(user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM people_totpfactor")
        (stored_key,) = cursor.fetchone()
        cursor.execute("SELECT code_hash FROM people_recoverycode")
        stored_codes = [row[0] for row in cursor.fetchall()]
    assert TotpFactor.objects.get().key not in stored_key
    assert len(codes) == len(stored_codes) == 10
    assert not any(code.replace("-", "") in stored for code in codes for stored in stored_codes)


def test_a_person_with_a_factor_is_asked_for_it_before_any_page(client):
    user = make_user("ana")
    phone, codes = enrol(user)
    client.post(reverse("login"), {"username": "ana", "password": PASSWORD})
    assert client.get(reverse("home")).url.startswith(reverse("verify_second_factor"))
    assert client.post(reverse("verify_second_factor"), {"code": code_at_step(phone, 0)}).status_code == 302
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="sign_in.second_factor", actor_label="ana").exists()


def test_a_code_is_accepted_once(client):
    user = make_user("ana")
    phone, _ = enrol(user)
    client.post(reverse("login"), {"username": "ana", "password": PASSWORD})
    # enrol() used step -1: a replay of it, or of any earlier step, is refused; and each wrong code makes
    # the factor wait longer before it takes another (django-otp's throttle).
    replay = client.post(reverse("verify_second_factor"), {"code": code_at_step(phone, -1)}, follow=True)
    assert "That code did not work. Wait 1 second" in replay.content.decode()
    assert client.get(reverse("home")).status_code == 302


def test_a_recovery_code_signs_in_once(client_class):
    user = make_user("ana")
    _, codes = enrol(user)
    for expected_status in (200, 302):
        browser = client_class()
        browser.post(reverse("login"), {"username": "ana", "password": PASSWORD})
        browser.post(reverse("verify_second_factor"), {"code": codes[0].upper()})
        assert browser.get(reverse("home")).status_code == expected_status
    assert RecoveryCode.objects.count() == 9


def test_mfa_required_for_admins_sends_an_admin_without_one_to_enrol_and_leaves_others_be(client, settings):
    settings.MFA_REQUIRED = "admins"
    make_user("root", admin=True)
    make_user("ana")
    client.post(reverse("login"), {"username": "root", "password": PASSWORD})
    assert client.get(reverse("home")).url == reverse("security")
    assert "Set up an authenticator app to go on" in client.get(reverse("security")).content.decode()
    client.post(reverse("logout"))
    client.post(reverse("login"), {"username": "ana", "password": PASSWORD})
    assert client.get(reverse("account")).status_code == 200


def test_an_admin_reset_removes_the_factors_and_ends_the_sessions(client):
    user = make_user("ana")
    enrol(user)
    client.post(reverse("login"), {"username": "ana", "password": PASSWORD})
    reset_factors(SYSTEM_ACTOR, user)
    assert not TotpFactor.objects.filter(user=user).exists() and not RecoveryCode.objects.exists()
    assert client.get(reverse("home")).url.startswith("/login/")
    assert AuditEvent.objects.get(action="user.mfa_reset").target_label == "ana"


def test_check_deploy_warns_when_mfa_is_off(settings, capsys):
    from people.checks import mfa_required

    settings.MFA_REQUIRED = "off"
    assert [w.id for w in mfa_required()] == ["integration_tools.W101"]
    settings.MFA_REQUIRED = "admins"
    assert mfa_required() == []
    call_command("check", "--deploy", "--tag", "security", "--fail-level", "CRITICAL")


def test_reset_factors_by_command_for_an_admin_locked_out_of_the_portal(capsys):
    root = make_user("root", admin=True)
    enrol(root)
    call_command("reset_factors", "root")
    assert "root's second factors are removed" in capsys.readouterr().out
    assert not TotpFactor.objects.filter(user=root).exists()
    assert AuditEvent.objects.get(action="user.mfa_reset").actor_label == "manage.py reset_factors"
    with pytest.raises(CommandError, match='no user "nobody"'):
        call_command("reset_factors", "nobody")


def test_a_misspelt_mfa_setting_stops_start_up_with_one_line():
    result = manage_py("check", MFA_REQUIRED="admin")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Integration Tools cannot start: MFA_REQUIRED must be admins, everyone or off, not 'admin'"
    ]
