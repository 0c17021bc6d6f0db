"""The Notifications page, the unread count in the header, and choosing what to be told."""

import pytest

from environments.tests.factories import grant, make_environment, make_user
from notifications.models import Kind, Mute, Notice

pytestmark = pytest.mark.django_db


@pytest.fixture
def director(client):
    user = make_user("director")
    grant(user, make_environment("clinic"))
    client.force_login(user)
    return user


def notice(user, subject="Webhook “EHR bridge” is failing (Clinic)", **fields):
    return Notice.objects.create(
        user=user,
        kind=fields.pop("kind", Kind.WEBHOOK_FAILING),
        key=fields.pop("key", subject),
        subject=subject,
        body=fields.pop("body", "Every attempt has failed for 2 hours."),
        link=fields.pop("link", "/e/clinic/webhooks/"),
        **fields,
    )


def test_the_header_counts_unread_notices_and_the_page_lists_them_newest_first(client, director):
    notice(director, "First")
    notice(director, "Second")
    notice(make_user("someone-else"), "Not yours")

    page = client.get("/e/clinic/").content.decode()
    assert 'Notifications <span class="count">2<span class="visually-hidden"> unread</span>' in page

    listing = client.get("/notifications/").content.decode()
    assert listing.index("Second") < listing.index("First")
    assert "Not yours" not in listing
    assert listing.count(">New</span>") == 2


def test_opening_a_notice_marks_it_read_and_goes_to_its_page(client, director):
    told = notice(director, link="/e/clinic/webhooks/")

    response = client.get(f"/notifications/{told.pk}/open/")
    assert response.status_code == 302 and response["Location"] == "/e/clinic/webhooks/"
    told.refresh_from_db()
    assert told.read_at is not None
    assert '<span class="count">' not in client.get("/e/clinic/").content.decode()


def test_nobody_opens_another_persons_notice(client, director):
    theirs = notice(make_user("someone-else"))
    assert client.get(f"/notifications/{theirs.pk}/open/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_mark_all_as_read(client, director):
    notice(director, "First")
    notice(director, "Second")
    response = client.post("/notifications/read/", follow=True)
    assert "Marked 2 notifications as read." in response.content.decode()
    assert not Notice.objects.filter(read_at__isnull=True).exists()


def test_a_person_chooses_the_kinds_they_are_told_about(client, director):
    page = client.get("/notifications/").content.decode()
    assert page.count('name="told"') == len(Kind.choices)
    assert page.count("checked") == len(Kind.choices)  # told everything by default

    told = [Kind.WEBHOOK_DISABLED, Kind.CREDENTIAL_EXPIRY]
    response = client.post("/notifications/settings/", {"told": told}, follow=True)
    assert "Saved: you are told about the kinds that are ticked" in response.content.decode()
    assert set(Mute.objects.filter(user=director).values_list("kind", flat=True)) == set(Kind.values) - set(told)

    client.post("/notifications/settings/", {"told": Kind.values})
    assert not Mute.objects.exists()


def test_an_unknown_kind_changes_nothing_and_says_so(client, director):
    Mute.objects.create(user=director, kind=Kind.WEBHOOK_FAILING)
    response = client.post("/notifications/settings/", {"told": ["webhook_failing", "lottery_win"]}, follow=True)
    page = response.content.decode()
    assert "Nothing was changed: the form named a kind of notification that does not exist." in page
    assert list(Mute.objects.values_list("kind", flat=True)) == [Kind.WEBHOOK_FAILING]


def test_the_pages_need_a_login(client):
    assert client.get("/notifications/")["Location"].startswith("/login/")
