"""Portal pages and commands of environments refuse bad input clearly and keep working (issue 10)."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from environments.configurations import create_configuration
from environments.models import Configuration, ConfigurationVersion
from environments.tests.bad_input import assert_command_refused, assert_refused
from environments.tests.factories import make_environment, make_user

pytestmark = pytest.mark.django_db

UNSTORABLE_DOCUMENTS = {
    "deep nesting": ('{"data_types": ' + "[" * 1500 + "]" * 1500 + "}", "nested more than"),
    "NaN": ('{"data_types": {"patients": {"fields": {"a": {"type": "number", "minimum": NaN}}}}}', "NaN"),
    "NUL": ('{"data_types": {"patients": {"label": "P\\u0000"}}}', "NUL character"),
    "lone surrogate": ('{"data_types": {"patients": {"label": "\\ud800"}}}', "unpaired surrogate"),
    "5,000-digit integer": ('{"data_types": {"patients": {"max_length": ' + "9" * 5000 + "}}}", "too many digits"),
    "not an object": ("[1]", "must be a JSON object"),
}


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("root", admin=True))
    create_configuration("Clinic", "clinic")
    return client


@pytest.mark.parametrize("case", UNSTORABLE_DOCUMENTS)
def test_a_draft_that_cannot_be_stored_is_a_form_error_and_nothing_is_saved(admin_client, case):
    text, says = UNSTORABLE_DOCUMENTS[case]
    response = admin_client.post("/configurations/clinic/drafts/new/", {"schema": text})
    assert says in assert_refused(response, 200)
    assert not ConfigurationVersion.objects.exists()


def test_a_stored_draft_that_is_not_an_object_still_shows_its_pages(admin_client):
    # Drafts saved before the rule (or by hand) must not take the pages down.
    configuration = Configuration.objects.get(slug="clinic")
    version = ConfigurationVersion.objects.create(configuration=configuration, number=1, schema=[1])
    assert_refused(admin_client.get("/configurations/clinic/"), 200)
    assert_refused(admin_client.get(f"/configurations/clinic/versions/{version.number}/"), 200)


@pytest.mark.parametrize(
    "path",
    ["/switch/?environment=a%00b", "/configurations/?q=%00", "/configurations/a%00b/"],
)
def test_a_nul_in_an_address_is_a_clear_400(admin_client, path):
    assert "NUL character" in assert_refused(admin_client.get(path))


def test_a_version_number_too_large_for_its_column_is_not_found(admin_client):
    assert_refused(admin_client.get("/configurations/clinic/versions/99999999999999999999/"), 404)


@pytest.mark.parametrize("case", UNSTORABLE_DOCUMENTS)
def test_publish_configuration_refuses_an_unstorable_file_in_one_line(tmp_path, case):
    make_environment("clinic")
    text, says = UNSTORABLE_DOCUMENTS[case]
    path = tmp_path / "schema.json"
    path.write_text(text, encoding="utf-8")
    before = ConfigurationVersion.objects.count()
    assert_command_refused("publish_configuration", str(path), "--environment", "clinic", says=says)
    assert ConfigurationVersion.objects.count() == before


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("grant_access", "u" * 200, "--role", "admin", "--create"), "at most 150"),
        (("grant_access", "bad name!", "--role", "admin", "--create"), "not a valid username"),
        (("bootstrap_demo", "--admin-username", "u" * 200), "at most 150"),
    ],
)
def test_usernames_the_column_cannot_hold_are_refused_in_one_line(args, says):
    assert_command_refused(*args, says=says)
    assert not get_user_model().objects.filter(username__startswith="u" * 100).exists()


@pytest.mark.parametrize(
    ("note", "says"),
    [("n" * 10_000, "the note is 10000 characters long; at most 200 are allowed"), ("a\x00", "contains a NUL")],
)
def test_publish_configuration_refuses_a_note_its_column_cannot_hold_in_one_line(tmp_path, note, says):
    environment = make_environment("clinic")
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(environment.published_version.schema), encoding="utf-8")
    before = ConfigurationVersion.objects.count()
    assert_command_refused("publish_configuration", str(path), "--environment", "clinic", "--note", note, says=says)
    assert ConfigurationVersion.objects.count() == before


def test_a_schema_path_that_is_a_directory_is_named_in_one_line(tmp_path):
    assert_command_refused("publish_configuration", str(tmp_path), "--environment", "clinic", says="cannot read")


def test_documents_the_rules_accept_still_publish(tmp_path):
    make_environment("clinic")
    document = {
        "data_types": {
            "patients": {"fields": {"name": {"type": "string"}, "w": {"type": "number", "maximum": 1e300}}},
            "workers": {"fields": {"name": {"type": "string", "label": "Naïve 名前 ✓"}}},
        }
    }
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    call_command("publish_configuration", str(path), "--environment", "clinic", stdout=io.StringIO())
    assert ConfigurationVersion.objects.filter(state="published").count() == 2
