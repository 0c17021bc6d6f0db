"""The People page: what Admins and Program Directors see, invitations that work once and expire."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from environments.models import AuditEvent, Grant
from environments.tests.factories import grant, make_environment, make_user
from people.invitations import invite
from people.models import Invitation
from portal.actor import Actor

pytestmark = pytest.mark.django_db


def test_a_program_director_sees_the_people_of_their_environment_only(client):
    clinic, lab = make_environment("clinic"), make_environment("lab")
    director = make_user("dora")
    grant(director, clinic)
    grant(make_user("val"), clinic, Grant.Role.VIEWER)
    grant(make_user("lee"), lab, Grant.Role.VIEWER)
    client.force_login(director)
    page = client.get(reverse("people")).content.decode()
    assert "val" in page and "Viewer in Clinic" in page and "lee" not in page
    assert "Invite someone" not in page
    assert client.post(reverse("people"), {"email": "x@example.org"}).status_code == 403


def test_a_viewer_may_not_open_the_people_page(client):
    viewer = make_user("val")
    grant(viewer, make_environment("clinic"), Grant.Role.VIEWER)
    client.force_login(viewer)
    assert client.get(reverse("people")).status_code == 403


def test_an_invitation_names_what_is_wrong_and_invites_nobody(client):
    client.force_login(make_user("root", admin=True))
    answer = client.post(
        reverse("people"), {"email": "dana@example.org", "username": "dana", "role": "viewer"}, follow=True
    )
    assert "Nobody was invited: Choose the environment where they will be Viewer." in answer.content.decode()
    assert not Invitation.objects.exists()


def invited(username: str, mailoutbox) -> str:
    """Invite `username` as an Admin (by Admin root); the path of the link their e-mail carries."""
    inviter = get_user_model().objects.filter(username="root").first() or make_user("root", admin=True)
    invite(
        Actor.for_user(inviter),
        email=f"{username}@example.org",
        username=username,
        role="admin",
        environment=None,
        base_url="http://portal.example.org",
    )
    return mailoutbox[-1].body.split("http://portal.example.org")[1].split()[0]


def test_an_invitation_link_works_once_and_not_after_it_expires(client, mailoutbox):
    link = invited("dana", mailoutbox)
    good = "a-long-enough-passphrase-7"
    assert client.post(link, {"password": good, "password_again": good}).status_code == 302
    assert client.get(link).status_code == 404
    late = invited("eli", mailoutbox)
    Invitation.objects.filter(username="eli").update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert "has been used already or has expired" in client.get(late).content.decode()
    assert AuditEvent.objects.filter(action="user.invited").count() == 2


def test_an_admin_changes_a_role_and_cannot_deactivate_themselves(client):
    root = make_user("root", admin=True)
    val = make_user("val")
    clinic = make_environment("clinic")
    client.force_login(root)
    page = reverse("person", args=[val.pk])
    client.post(page, {"action": "set_role", "environment": "clinic", "role": "program_director"})
    assert Grant.objects.get(user=val, environment=clinic).role == "program_director"
    client.post(page, {"action": "set_role", "environment": "clinic", "role": ""})
    assert not Grant.objects.filter(user=val).exists()
    answer = client.post(reverse("person", args=[root.pk]), {"action": "deactivate"}, follow=True)
    assert "You cannot deactivate yourself" in answer.content.decode()
    assert [e.action for e in AuditEvent.objects.order_by("id")][-2:] == ["user.role_granted", "user.role_revoked"]
