"""Configurations are versioned; publishing is validated, all or nothing, and audited."""

import copy

import pytest

from environments.configurations import (
    ConfigurationError,
    create_configuration,
    create_environment,
    publish_document,
    publish_version,
    save_draft,
)
from environments.demo import DEMO_SCHEMA
from environments.models import AuditEvent, ConfigurationVersion, Environment
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

    version = publish_document(schema_with(visits=visits), ["clinic-test", "clinic-live"], note="Add visits")

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
