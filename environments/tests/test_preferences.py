"""Each person's time zone (every time shown in it, labelled) and the environment they land on."""

import pytest

from environments.models import Preference
from environments.tests.factories import grant, make_environment, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def director(client):
    user = make_user("director")
    grant(user, make_environment("clinic"))
    client.force_login(user)
    return user


def test_times_are_shown_in_the_chosen_zone_and_labelled(client, director):
    page = client.get("/audit/").content.decode()
    assert " UTC</td>" in page or " UTC<" in page

    response = client.post("/account/", {"time_zone": "Asia/Kolkata"}, follow=True)
    assert "Saved: times are now shown in your time zone" in response.content.decode()
    assert Preference.objects.get(user=director).time_zone == "Asia/Kolkata"
    page = client.get("/audit/").content.decode()
    assert "IST" in page and " UTC<" not in page


def test_a_zone_that_does_not_exist_changes_nothing_and_says_so(client, director):
    response = client.post("/account/", {"time_zone": "Mars/Olympus_Mons"}, follow=True)
    assert "Nothing was changed: “Mars/Olympus_Mons” is not a time zone name" in response.content.decode()
    assert not Preference.objects.filter(user=director, time_zone="Mars/Olympus_Mons").exists()


def test_a_first_visit_lands_on_test_before_live_and_later_visits_where_one_worked_last(client):
    live = make_environment("a-live", kind="live")
    make_environment("b-test")
    user = make_user("root", admin=True)
    client.force_login(user)
    assert client.get("/")["Location"] == "/e/b-test/"
    client.get(f"/e/{live.slug}/webhooks/")
    assert client.get("/")["Location"] == "/e/a-live/"


@pytest.mark.parametrize("path", ["/audit/", "/configurations/", "/notifications/", "/account/"])
def test_organisation_pages_keep_the_environment_one_works_in_in_the_switcher_and_the_menu(client, path):
    make_environment("a-test")
    make_environment("b-clinic")
    client.force_login(make_user("root", admin=True))
    client.get("/e/b-clinic/webhooks/")
    page = client.get(path).content.decode()
    assert '<option value="b-clinic" selected>' in page
    assert 'href="/e/b-clinic/webhooks/"' in page  # the environment's sections stay in the menu
    assert 'href="/e/a-test/' not in page
