"""Configurations are versioned; publishing is validated, all or nothing, and audited."""

import copy

import pytest

from environments.configurations import (
    ConfigurationError,
    RecordsLeftInvalid,
    create_configuration,
    create_environment,
    publish_document,
    publish_version,
    save_draft,
)
from environments.demo import DEMO_SCHEMA
from environments.models import AuditEvent, ConfigurationVersion, Environment
from environments.records import create_record
from environments.schema import SchemaInvalid
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db


def schema_with(**extra_types):
    document = copy.deepcopy(DEMO_SCHEMA)
    document["data_types"].update(extra_types)
    return document


def test_publishing_a_document_makes_a_new_version_and_sets_it_on_the_environments():
    test_env = make_environment("clinic-test")
    live_env = make_environment("clinic-live", configuration=test_env.configuration)
    visits = {"fields": {"patient_id": {"type": "string", "required": True}}}

    version, _ = publish_document(schema_with(visits=visits), ["clinic-test", "clinic-live"], note="Add visits")

    assert version.number == 2
    assert version.state == ConfigurationVersion.State.PUBLISHED
    for env in (test_env, live_env):
        env.refresh_from_db()
        assert env.published_version == version
        assert "visits.created" in env.event_types
    published = AuditEvent.objects.filter(action="configuration.published", details__version=2)
    assert sorted(e.environment.slug for e in published) == ["clinic-live", "clinic-test"]


def test_event_types_come_from_the_published_schema():
    env = make_environment()
    assert env.event_types == [
        "assessments.created",
        "assessments.updated",
        "assessments.deleted",
        "patients.created",
        "patients.updated",
        "patients.deleted",
        "workers.created",
        "workers.updated",
        "workers.deleted",
    ]


def test_an_invalid_document_changes_nothing():
    env = make_environment("clinic")
    bad = schema_with(visits={"fields": {"when": {"type": "time"}}})
    versions_before = ConfigurationVersion.objects.count()

    with pytest.raises(SchemaInvalid, match='data type "visits", field "when": unknown type "time"'):
        publish_document(bad, ["clinic"])

    assert ConfigurationVersion.objects.count() == versions_before
    env.refresh_from_db()
    assert env.published_version.number == 1


def test_an_unknown_environment_is_named_and_nothing_changes():
    make_environment("clinic")
    versions_before = ConfigurationVersion.objects.count()
    with pytest.raises(ConfigurationError, match="unknown environment: nowhere"):
        publish_document(DEMO_SCHEMA, ["clinic", "nowhere"])
    assert ConfigurationVersion.objects.count() == versions_before


def test_environments_of_different_configurations_cannot_be_published_together():
    make_environment("one")
    make_environment("two")
    with pytest.raises(ConfigurationError, match="the environments run different configurations"):
        publish_document(DEMO_SCHEMA, ["one", "two"])


def test_a_draft_that_does_not_validate_cannot_be_published():
    env = make_environment("clinic")
    draft = save_draft(env.configuration, {"data_types": {"patients": {"fields": {}}}})
    with pytest.raises(SchemaInvalid) as caught:
        publish_version(draft, [env])
    assert [str(p) for p in caught.value.problems] == [
        'data type "workers": the built-in data type is missing',
        'data type "patients": "fields" must be a non-empty object',
    ]
    draft.refresh_from_db()
    env.refresh_from_db()
    assert draft.is_draft
    assert env.published_version.number == 1


def test_a_version_cannot_be_published_to_an_environment_of_another_configuration():
    env = make_environment("clinic")
    other = create_configuration("Other", "other")
    draft = save_draft(other, DEMO_SCHEMA)
    with pytest.raises(ConfigurationError, match='environment "clinic" runs configuration'):
        publish_version(draft, [env])


def test_published_versions_are_frozen():
    env = make_environment()
    with pytest.raises(ConfigurationError, match="published versions cannot change"):
        save_draft(env.configuration, DEMO_SCHEMA, draft=env.published_version)


def test_a_duplicate_environment_slug_is_refused():
    env = make_environment("clinic")
    with pytest.raises(ConfigurationError, match='an environment with the slug "clinic" already exists'):
        create_environment("Clinic again", "clinic", "live", env.configuration)
    assert Environment.objects.filter(slug="clinic").count() == 1


def test_a_new_environment_starts_on_the_latest_published_version():
    env = make_environment("clinic-test")
    sibling = create_environment("Clinic Live", "clinic-live", "live", env.configuration)
    assert sibling.published_version == env.published_version
    assert AuditEvent.objects.filter(action="environment.created", environment=sibling).exists()


def breaking_schema():
    """The demo schema with patients' rules tightened: what was valid before is not always valid now."""
    document = copy.deepcopy(DEMO_SCHEMA)
    patients = document["data_types"]["patients"]["fields"]
    patients["status"]["choices"] = ["active"]  # "discharged" removed
    patients["birth_date"]["required"] = True  # made required
    patients["first_name"]["max_length"] = 5  # lowered
    patients["first_name"]["label"] = "Given name"  # a label alone changes no record's validity
    del patients["email"]  # a field dropped
    del document["data_types"]["assessments"]  # a data type dropped
    return document


def fill(env):
    create_record(env, "patients", {"first_name": "Ada", "last_name": "L", "birth_date": "1815-12-10"})  # still valid
    create_record(env, "patients", {"first_name": "Augusta", "last_name": "B", "birth_date": "1816-12-10"})
    create_record(env, "patients", {"first_name": "Mary", "last_name": "S", "status": "discharged"})
    create_record(env, "patients", {"first_name": "Eve", "last_name": "E", "email": "eve@example.org"})
    create_record(env, "workers", {"name": "W", "email": "w@example.org"})  # workers unchanged: not read
    create_record(env, "assessments", {"patient_id": "p-1"})
    create_record(env, "assessments", {"patient_id": "p-2"})


def test_a_publish_that_would_leave_records_invalid_says_how_many_and_which_fields_and_changes_nothing():
    env = make_environment("clinic")
    fill(env)

    with pytest.raises(RecordsLeftInvalid) as caught:
        publish_document(breaking_schema(), ["clinic"])

    impact = caught.value.impact
    assert impact.records == 5
    assert impact.as_json() == {
        "clinic": {
            "assessments": {
                "records": 2,
                "fields": {"record": {"records": 2, "example": "the data type is not in the new schema"}},
            },
            "patients": {
                "records": 3,
                "fields": {
                    "birth_date": {"records": 2, "example": "this field is required"},
                    "email": {"records": 1, "example": "the field is not in the new schema"},
                    "first_name": {"records": 1, "example": "must be at most 5 characters (got 7)"},
                    "status": {"records": 1, "example": "must be one of active"},
                },
            },
        }
    }
    assert str(caught.value) == (
        "publishing would leave 5 existing records invalid: clinic: "
        "2 assessments records (the data type is not in the new schema), "
        "3 patients records (fields: birth_date 2, email 1, first_name 1, status 1)"
    )
    assert ConfigurationVersion.objects.count() == 1
    env.refresh_from_db()
    assert env.published_version.number == 1


def test_an_accepted_breaking_publish_goes_and_the_audit_counts_what_was_accepted():
    env = make_environment("clinic")
    fill(env)
    draft = save_draft(env.configuration, breaking_schema())

    publish_version(draft, [env], accept_invalid_records=True)

    env.refresh_from_db()
    assert env.published_version == draft
    audit = AuditEvent.objects.get(action="configuration.published", details__version=2)
    assert audit.details["invalid_records_accepted"] == 5
    # Records that already failed are not counted again by the next publish: only what it changes is judged.
    with_visits = breaking_schema()
    with_visits["data_types"]["visits"] = {"fields": {"n": {"type": "integer"}}}
    version, impact = publish_document(with_visits, ["clinic"])
    assert version.number == 3 and not impact


def test_the_check_is_per_environment_the_version_is_published_to():
    test_env = make_environment("clinic-test")
    live_env = make_environment("clinic-live", configuration=test_env.configuration)
    create_record(live_env, "patients", {"first_name": "Mary", "last_name": "S", "status": "discharged"})
    document = copy.deepcopy(DEMO_SCHEMA)
    document["data_types"]["patients"]["fields"]["status"]["choices"] = ["active"]

    publish_document(document, ["clinic-test"])  # no record there fails it

    with pytest.raises(RecordsLeftInvalid, match="clinic-live: 1 patients record \\(fields: status 1\\)$"):
        publish_document(document, ["clinic-test", "clinic-live"])
