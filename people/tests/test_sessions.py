"""Open sessions: seen and ended by their person, refused when idle, too old, or their person deactivated."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from environments.models import AuditEvent
from environments.tests.factories import PASSWORD, make_user
from people.directory import deactivate
from people.models import OpenSession
from portal.actor import SYSTEM_ACTOR

pytestmark = pytest.mark.django_db


def signed_in(client_class, username, ip="198.51.100.7"):
    client = client_class(REMOTE_ADDR=ip, HTTP_USER_AGENT=f"Browser at {ip}")
    assert client.post(reverse("login"), {"username": username, "password": PASSWORD}).status_code == 302
    return client


def test_the_security_page_lists_each_browser_and_ends_another_one(client_class):
    make_user("ana")
    laptop = signed_in(client_class, "ana", "198.51.100.7")
    phone = signed_in(client_class, "ana", "198.51.100.8")
    page = laptop.get(reverse("security")).content.decode()
    assert "198.51.100.7" in page and "198.51.100.8" in page and "This browser" in page
    other = OpenSession.objects.get(ip="198.51.100.8")
    laptop.post(reverse("security"), {"action": "end_session", "session": other.session_key})
    assert phone.get(reverse("home")).url.startswith("/login/")
    assert laptop.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="user.session_ended", actor_label="ana").exists()


def test_sign_out_everywhere_else_keeps_this_browser(client_class):
    make_user("ana")
    browsers = [signed_in(client_class, "ana", f"198.51.100.{n}") for n in range(3)]
    browsers[0].post(reverse("security"), {"action": "end_others"})
    assert browsers[0].get(reverse("home")).status_code == 200
    assert all(b.get(reverse("home")).url.startswith("/login/") for b in browsers[1:])
    browsers[0].post(reverse("logout"))
    assert not OpenSession.objects.exists()


def test_an_idle_session_is_signed_out_with_the_reason(client_class, settings):
    make_user("ana")
    browser = signed_in(client_class, "ana")
    OpenSession.objects.update(
        last_seen_at=timezone.now() - datetime.timedelta(minutes=settings.SESSION_IDLE_MINUTES + 1)
    )
    answer = browser.get(reverse("home"), follow=True)
    assert answer.redirect_chain[0][0].startswith("/login/")
    assert f"signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity" in answer.content.decode()


def test_no_session_outlives_its_absolute_lifetime_however_busy(client_class, settings):
    make_user("ana")
    browser = signed_in(client_class, "ana")
    OpenSession.objects.update(
        started_at=timezone.now() - datetime.timedelta(hours=settings.SESSION_MAX_HOURS, minutes=1)
    )
    assert browser.get(reverse("home")).url.startswith("/login/")


def test_a_deactivated_persons_open_session_is_refused_at_its_next_request(client_class):
    user = make_user("ana")
    browser = signed_in(client_class, "ana")
    deactivate(SYSTEM_ACTOR, user)
    assert browser.get(reverse("home")).url.startswith("/login/")
    assert not OpenSession.objects.filter(user=user).exists()
    assert AuditEvent.objects.get(action="user.deactivated").target_label == "ana"


def test_changing_the_password_signs_out_every_other_browser(client_class):
    make_user("ana")
    here, there = signed_in(client_class, "ana"), signed_in(client_class, "ana", "198.51.100.9")
    weak = here.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": "12345678", "new_password2": "12345678"}
    )
    assert "This password is too common" in weak.content.decode()
    new = "a-much-better-passphrase-42"
    answer = here.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert answer.url == reverse("security")
    assert here.get(reverse("home")).status_code == 200
    assert there.get(reverse("home")).url.startswith("/login/")
    assert AuditEvent.objects.filter(action="user.password_changed", actor_label="ana").exists()


def test_sessions_lapsed_for_over_a_day_are_ended_and_a_lapsed_one_still_says_why_meanwhile(client_class, settings):
    from django.contrib.sessions.models import Session

    from people.sessions import end_lapsed_sessions

    make_user("ana")
    now = timezone.now()
    browsers = [signed_in(client_class, "ana", f"198.51.100.{n}") for n in range(4)]
    idle_last_week, idle_an_hour, too_old, current = browsers
    OpenSession.objects.filter(ip="198.51.100.0").update(last_seen_at=now - datetime.timedelta(days=7))
    OpenSession.objects.filter(ip="198.51.100.1").update(last_seen_at=now - datetime.timedelta(hours=1))
    OpenSession.objects.filter(ip="198.51.100.2").update(started_at=now - datetime.timedelta(days=3))
    Session.objects.create(session_key="x" * 32, session_data="", expire_date=now - datetime.timedelta(seconds=1))

    assert end_lapsed_sessions(now) == 2
    assert set(OpenSession.objects.values_list("ip", flat=True)) == {"198.51.100.1", "198.51.100.3"}
    assert not Session.objects.filter(session_key="x" * 32).exists(), "the store's expired rows go too"
    assert current.get(reverse("security")).status_code == 200
    # Lapsed an hour ago: kept, so its next request still says why it was signed out.
    idle_page = idle_an_hour.get(reverse("security"), follow=True).content.decode()
    assert f"signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity" in idle_page
    # Ended: its browser is simply signed out.
    assert idle_last_week.get(reverse("security")).url.startswith(reverse("login"))
    assert too_old.get(reverse("security")).url.startswith(reverse("login"))
