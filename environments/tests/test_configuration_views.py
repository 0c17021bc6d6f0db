"""Admins edit configurations in the portal; bad input gets a precise form error and changes nothing."""

import json

import pytest

from environments.demo import DEMO_SCHEMA
from environments.models import AuditEvent, Configuration, ConfigurationVersion, Environment
from environments.records import create_record
from environments.tests.factories import make_environment, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", admin=True))
    return client


def test_an_admin_creates_a_configuration_and_its_first_draft(admin_client):
    response = admin_client.post("/configurations/new/", {"name": "Clinic", "slug": "clinic"})
    assert response["Location"] == "/configurations/clinic/"
    response = admin_client.post(
        "/configurations/clinic/drafts/new/", {"schema": json.dumps(DEMO_SCHEMA), "note": "first"}
    )
    assert response["Location"] == "/configurations/clinic/versions/1/"
    version = ConfigurationVersion.objects.get(configuration__slug="clinic")
    assert (version.number, version.is_draft, version.note) == (1, True, "first")
    assert AuditEvent.objects.filter(action="configuration.draft_saved", actor_label="root").exists()


def test_malformed_json_is_pointed_at(admin_client):
    Configuration.objects.create(name="Clinic", slug="clinic")
    response = admin_client.post("/configurations/clinic/drafts/new/", {"schema": '{"data_types": {,}}'})
    assert response.status_code == 200
    expected = "refused: not valid JSON: Expecting property name enclosed in double quotes at line 1, column 17"
    assert expected in response.content.decode()
    assert not ConfigurationVersion.objects.exists()


def test_publishing_an_invalid_draft_lists_each_problem_and_changes_nothing(admin_client):
    env = make_environment("clinic")
    admin_client.post(
        f"/configurations/{env.configuration.slug}/drafts/new/",
        {"schema": json.dumps({"data_types": {"patients": {"fields": {"age": {"type": "int"}}}}})},
    )
    response = admin_client.post(
        f"/configurations/{env.configuration.slug}/versions/2/", {"action": "publish", "environments": [env.pk]}
    )
    page = response.content.decode()
    assert "Cannot publish: data type &quot;workers&quot;: the built-in data type is missing" in page
    assert "Cannot publish: data type &quot;patients&quot;, field &quot;age&quot;: unknown type &quot;int&quot;" in page
    env.refresh_from_db()
    assert env.published_version.number == 1
    assert ConfigurationVersion.objects.get(number=2).is_draft


def test_publishing_a_valid_draft_updates_the_environment(admin_client):
    env = make_environment("clinic")
    schema = {
        **DEMO_SCHEMA,
        "data_types": {**DEMO_SCHEMA["data_types"], "visits": {"fields": {"n": {"type": "integer"}}}},
    }
    admin_client.post(f"/configurations/{env.configuration.slug}/drafts/new/", {"schema": json.dumps(schema)})
    response = admin_client.post(
        f"/configurations/{env.configuration.slug}/versions/2/", {"action": "publish", "environments": [env.pk]}
    )
    assert response.status_code == 302
    env.refresh_from_db()
    assert env.published_version.number == 2
    assert "visits.created" in env.event_types


def test_publishing_needs_an_environment(admin_client):
    env = make_environment("clinic")
    response = admin_client.post(f"/configurations/{env.configuration.slug}/versions/1/", {"action": "publish"})
    assert "Choose at least one environment to publish to." in response.content.decode()


def test_a_duplicate_environment_slug_is_a_form_error(admin_client):
    env = make_environment("clinic")
    response = admin_client.post(
        "/environments/new/",
        {"name": "Clinic 2", "slug": "clinic", "kind": "live", "configuration": env.configuration.pk},
    )
    assert response.status_code == 200
    assert "an environment with the slug &quot;clinic&quot; already exists" in response.content.decode()
    assert Environment.objects.count() == 1


def test_an_admin_creates_an_environment(admin_client):
    env = make_environment("clinic")
    response = admin_client.post(
        "/environments/new/",
        {"name": "Clinic Live", "slug": "clinic-live", "kind": "live", "configuration": env.configuration.pk},
    )
    assert response["Location"] == "/e/clinic-live/"
    created = Environment.objects.get(slug="clinic-live")
    assert created.published_version == env.published_version


def test_saving_a_draft_that_cannot_be_published_keeps_it_and_says_what_to_fix(admin_client):
    env = make_environment("clinic")
    without_workers = {"data_types": {"patients": DEMO_SCHEMA["data_types"]["patients"]}}
    response = admin_client.post(
        f"/configurations/{env.configuration.slug}/drafts/new/", {"schema": json.dumps(without_workers)}, follow=True
    )
    page = response.content.decode()
    assert "Draft version 2 saved, but it cannot be published yet: 1 problem to fix, listed below." in page
    assert "This draft cannot be published yet" in page
    assert "data type &quot;workers&quot;: the built-in data type is missing" in page
    assert ConfigurationVersion.objects.get(number=2).schema == without_workers

    # Saving it again into the same draft, fixed: no warning any more.
    response = admin_client.post(
        f"/configurations/{env.configuration.slug}/versions/2/",
        {"action": "save", "schema": json.dumps(DEMO_SCHEMA)},
        follow=True,
    )
    page = response.content.decode()
    assert "Draft version 2 saved." in page and "cannot be published yet" not in page


def test_a_publish_that_would_leave_records_invalid_shows_them_and_needs_a_confirmation(admin_client):
    env = make_environment("clinic")
    create_record(env, "patients", {"first_name": "Mary", "last_name": "Shelley", "status": "discharged"})
    create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace", "status": "active"})
    document = json.loads(json.dumps(DEMO_SCHEMA))
    document["data_types"]["patients"]["fields"]["status"]["choices"] = ["active"]
    admin_client.post(f"/configurations/{env.configuration.slug}/drafts/new/", {"schema": json.dumps(document)})
    url = f"/configurations/{env.configuration.slug}/versions/2/"

    response = admin_client.post(url, {"action": "publish", "environments": [env.pk]})
    page = response.content.decode()
    assert response.status_code == 200
    assert "Nothing was published: 1 existing record would fail version 2" in page
    assert "<td>Clinic</td>" in page and "<code>patients</code>" in page
    assert "<code>status</code>: 1 (must be one of active)" in page
    assert 'name="accept_invalid_records"' in page
    env.refresh_from_db()
    assert env.published_version.number == 1

    # Publishing again without ticking the box asks again; ticking it publishes.
    response = admin_client.post(url, {"action": "publish", "environments": [env.pk]})
    assert "Nothing was published" in response.content.decode()
    env.refresh_from_db()
    assert env.published_version.number == 1
    response = admin_client.post(url, {"action": "publish", "environments": [env.pk], "accept_invalid_records": "on"})
    assert response.status_code == 302
    env.refresh_from_db()
    assert env.published_version.number == 2
    audit = AuditEvent.objects.get(action="configuration.published", details__version=2)
    assert audit.details["invalid_records_accepted"] == 1
