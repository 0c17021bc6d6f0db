"""The event catalog: a JSON Schema of every event type, the one each body a webhook receives validates against."""

import copy
import json

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from conftest import wait_for
from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.configurations import publish_version, save_draft
from environments.demo import DEMO_SCHEMA
from environments.records import create_record, delete_record, update_record
from webhooks import event_schemas, manual
from webhooks.delivery import bodies
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db

ALL_TYPES = ["patients.created", "patients.updated", "patients.deleted", "workers.created"]


def events_in(body: dict) -> list[dict]:
    return body.get("events", [body])


def test_every_body_a_seeded_run_sends_validates_against_the_catalog(celery_worker_process, env):
    with Receiver() as receiver:
        hooks = {
            "/full": make_webhook(env, f"{receiver.url}/full", name="Full", event_types=ALL_TYPES),
            "/chosen": make_webhook(
                env,
                f"{receiver.url}/chosen",
                name="Chosen fields",
                event_types=ALL_TYPES,
                payload_fields={"patients": ["first_name", "status"], "workers": []},
            ),
            "/thin": make_webhook(
                env,
                f"{receiver.url}/thin",
                name="Thin, batched",
                event_types=ALL_TYPES,
                payload_format="thin",
                max_events_per_request=10,
            ),
        }
        patient = create_record(env, "patients", {"first_name": "Ada", "last_name": "L", "status": "active"})
        create_record(env, "workers", {"name": "Bo", "email": "bo@example.org", "role": "physician"})
        update_record(patient, {"status": "discharged", "email": "ada@example.org"})
        delete_record(patient)
        for webhook in hooks.values():
            manual.send_test(webhook)
            manual.send_test(webhook, event_type="patients.updated")
        wait_for(
            lambda: sum(len(events_in(json.loads(r.body))) for r in receiver.requests) >= 3 * 6,
            timeout=60,
            message="every event and test to reach the receiver",
        )

    seen = set()
    for request in receiver.requests:
        webhook = hooks[request.path.rpartition("/hooks")[2]]
        body = json.loads(request.body)
        whole = {"$schema": event_schemas.DIALECT, **event_schemas.body_schema(webhook)}
        Draft202012Validator(whole).validate(body)
        for event in events_in(body):
            Draft202012Validator(event_schemas.event_schema(env, event["type"], webhook)).validate(event)
            seen.add((webhook.name, event["type"]))
    assert {event_type for _, event_type in seen} == {*ALL_TYPES, "webhook.test"}
    assert len(seen) == 3 * 5


def test_a_schema_refuses_what_a_webhook_does_not_receive(env):
    full = make_webhook(env, "http://127.0.0.1:9201/full", name="Full")
    chosen = make_webhook(
        env, "http://127.0.0.1:9201/chosen", name="Chosen", payload_fields={"patients": ["first_name"]}
    )
    event = json.loads(manual_body(full))
    Draft202012Validator(event_schemas.event_schema(env, "patients.created", full)).validate(event)
    problems = list(
        Draft202012Validator(event_schemas.event_schema(env, "patients.created", chosen)).iter_errors(event)
    )
    assert any("'last_name'" in problem.message for problem in problems)
    event["data"]["fields"]["status"] = "moved"
    problems = list(Draft202012Validator(event_schemas.event_schema(env, "patients.created", full)).iter_errors(event))
    assert [problem.message for problem in problems] == ["'moved' is not one of ['active', 'discharged']"]


def manual_body(webhook) -> str:
    return bodies.preview(webhook, "patients.created")


def test_the_openapi_document_lists_each_webhook_and_the_catalog_version_moves_with_a_publish(client, env):
    make_webhook(env, "http://127.0.0.1:9201/a", name="Chosen", payload_fields={"patients": ["first_name"]})
    api_client = make_client(env, scopes=["patients:read"])
    credential, _ = make_credential(api_client)
    token = issue_token(api_client, credential, None, ip="127.0.0.1").access_token

    def document() -> dict:
        response = client.get("/api/v1/clinic/openapi.json", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        return response.json()

    doc = document()
    validate_openapi(doc)
    assert doc["openapi"].startswith("3.1")
    operation = doc["webhooks"]["Chosen"]["post"]
    assert "event catalog version 1" in operation["summary"]
    one_of = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    created = next(s for s in one_of if s["properties"]["type"] == {"const": "patients.created"})
    assert list(created["properties"]["data"]["properties"]["fields"]["properties"]) == ["first_name"]

    schema = copy.deepcopy(DEMO_SCHEMA)
    schema["data_types"]["patients"]["fields"]["nickname"] = {"type": "string"}
    publish_version(save_draft(env.configuration, schema), [env])
    env.refresh_from_db()
    assert event_schemas.catalog_version(env) == 2
    assert "event catalog version 2" in document()["webhooks"]["Chosen"]["post"]["summary"]
