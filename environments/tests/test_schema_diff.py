"""The publish diff in words: each change named, marked compatible or breaking, and a breaking publish confirmed."""

import copy
import json

import pytest

from environments.demo import DEMO_SCHEMA
from environments.schema_diff import schema_changes
from environments.tests.factories import make_environment, make_user


def changed(**edits) -> dict:
    schema = copy.deepcopy(DEMO_SCHEMA)
    for path, value in edits.items():
        data_type, field, key = path.split("__")
        spec = schema["data_types"][data_type]["fields"].setdefault(field, {})
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return schema


def described(old: dict, new: dict) -> list[tuple[str, str]]:
    return [(str(change), change.verdict) for change in schema_changes(old, new)]


def test_each_kind_of_change_is_named_and_judged():
    new = changed(
        patients__status__choices=["active"],
        patients__email__required=True,
        assessments__score__type="number",
        workers__nickname__type="string",
        patients__last_name__max_length=50,
    )
    new["data_types"]["visits"] = {"fields": {"when": {"type": "datetime"}}}
    assert described(DEMO_SCHEMA, new) == [
        ("assessments.score: type changed from integer to number", "breaking"),
        ("patients.email: field made required", "breaking"),
        ("patients.last_name: max length changed from 100 to 50", "breaking"),
        ("patients.status: choices removed: discharged", "breaking"),
        ("visits: data type added", "compatible"),
        ("workers.nickname: field added", "compatible"),
    ]


def test_relaxing_rules_and_removing_things():
    new = changed(patients__first_name__required=None, patients__status__choices=["active", "discharged", "moved"])
    del new["data_types"]["assessments"]
    del new["data_types"]["workers"]["fields"]["role"]
    assert described(DEMO_SCHEMA, new) == [
        ("assessments: data type removed", "breaking"),
        ("workers.role: field removed", "breaking"),
        ("patients.first_name: field made optional", "compatible"),
        ("patients.status: choices added: moved", "compatible"),
    ]


def test_an_unchanged_schema_has_no_diff():
    assert schema_changes(DEMO_SCHEMA, copy.deepcopy(DEMO_SCHEMA)) == []


@pytest.mark.django_db
def test_a_breaking_change_with_no_record_at_fault_still_asks_for_a_confirmation(client):
    env = make_environment("clinic")
    client.force_login(make_user("root", admin=True))
    url = f"/configurations/{env.configuration.slug}/"
    client.post(f"{url}drafts/new/", {"schema": json.dumps(changed(patients__email__required=True))})

    asked = client.post(f"{url}versions/2/", {"action": "publish", "environments": [env.pk]})
    assert "Nothing was published: version 2 makes 1 breaking change" in asked.text
    assert "patients.email</code>: field made required — 0 records left invalid" in asked.text
    env.refresh_from_db()
    assert env.published_version.number == 1

    client.post(f"{url}versions/2/", {"action": "publish", "environments": [env.pk], "accept_invalid_records": "on"})
    env.refresh_from_db()
    assert env.published_version.number == 2
