"""Roles are enforced on every page, not just hidden from menus."""

import pytest

from environments.models import Grant
from environments.tests.factories import grant, make_environment, make_user

pytestmark = pytest.mark.django_db

SECTIONS = ("", "credentials/", "webhooks/", "deliveries/")


def test_anonymous_visitors_are_sent_to_log_in(client):
    env = make_environment("clinic")
    for path in ["/", "/audit/", "/configurations/", *(f"/e/{env.slug}/{s}" for s in SECTIONS)]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/login/?next="), path


def test_a_user_sees_only_the_environments_granted_to_them(client):
    clinic, lab = make_environment("clinic"), make_environment("lab")
    user = make_user()
    grant(user, clinic, Grant.Role.VIEWER)
    client.force_login(user)

    page = client.get("/e/clinic/").content.decode()
    assert '<p class="nav-heading">Clinic</p>' in page
    assert 'value="lab"' not in page and "/e/lab/" not in page
    for section in SECTIONS:
        assert client.get(f"/e/clinic/{section}").status_code == 200
        assert client.get(f"/e/{lab.slug}/{section}").status_code == 404


def test_home_opens_the_first_environment_or_explains_there_is_none(client):
    user = make_user()
    client.force_login(user)
    assert "No environment has been shared with you" in client.get("/").content.decode()
    grant(user, make_environment("clinic"))
    assert client.get("/")["Location"] == "/e/clinic/"


def test_switching_environment_keeps_the_section(client):
    make_environment("clinic")
    make_environment("lab")
    client.force_login(make_user(admin=True))
    assert client.get("/switch/?environment=lab&section=webhooks")["Location"] == "/e/lab/webhooks/"
    assert client.get("/switch/?environment=lab&section=../../admin")["Location"] == "/e/lab/"
    assert client.get("/switch/?environment=nowhere").status_code == 404


def test_non_admins_cannot_reach_configurations(client):
    env = make_environment("clinic")
    director = make_user()
    grant(director, env, Grant.Role.PROGRAM_DIRECTOR)
    client.force_login(director)
    for path in (
        "/configurations/",
        "/configurations/new/",
        "/environments/new/",
        f"/configurations/{env.configuration.slug}/versions/1/",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert b"This page is for Admins." in response.content


def test_pages_send_a_content_security_policy_and_no_inline_code(client):
    make_environment("clinic")
    client.force_login(make_user(admin=True))
    response = client.get("/e/clinic/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert b"style=" not in response.content
    assert b"<script>" not in response.content


def test_unknown_pages_get_a_friendly_404(client):
    client.force_login(make_user(admin=True))
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"There is nothing here, or it is not yours to see." in response.content
