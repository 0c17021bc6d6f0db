"""Each environment's OpenAPI document is generated from its published schema, for the token's scopes."""

import json

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_spec_validator import validate

from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.demo import DEMO_SCHEMA
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db


def token_for(environment, scopes) -> str:
    api_client = make_client(environment, scopes=scopes)
    credential, _ = make_credential(api_client)
    return issue_token(api_client, credential, None, ip="127.0.0.1").access_token


def document(client, slug: str, token: str):
    return client.get(f"/api/v1/{slug}/openapi.json", headers={"Authorization": f"Bearer {token}"})


def test_fields_are_typed_from_the_published_schema(client):
    environment = make_environment("clinic", schema=DEMO_SCHEMA)
    response = document(client, "clinic", token_for(environment, ["patients:read", "patients:write"]))
    assert response.status_code == 200
    doc = response.json()
    validate(doc)

    create = doc["components"]["schemas"]["PatientsFieldsCreate"]
    assert create["required"] == ["first_name", "last_name"]
    assert create["additionalProperties"] is False
    assert create["properties"]["first_name"]["maxLength"] == 100
    # An optional field may be given as null, which means "not set".
    assert create["properties"]["birth_date"]["anyOf"] == [{"type": "string", "format": "date"}, {"type": "null"}]
    assert create["properties"]["email"]["anyOf"][0]["format"] == "email"
    assert create["properties"]["status"]["anyOf"][0]["enum"] == ["active", "discharged"]
    patch = doc["components"]["schemas"]["PatientsFieldsPatch"]["properties"]
    assert patch["status"] == {"anyOf": [{"type": "string", "enum": ["active", "discharged"]}, {"type": "null"}]}
    assert patch["first_name"]["type"] == "string"  # required: cannot be cleared with null


def test_only_the_operations_the_token_may_call_are_described(client):
    environment = make_environment("clinic", schema=DEMO_SCHEMA)
    doc = document(client, "clinic", token_for(environment, ["patients:read", "assessments:write"])).json()
    assert set(doc["paths"]) == {
        "/api/v1/clinic/patients/",
        "/api/v1/clinic/patients/changes",
        "/api/v1/clinic/patients/{record_id}",
        "/api/v1/clinic/assessments/",
        "/api/v1/clinic/assessments/{record_id}",
        "/api/v1/clinic/events",
    }
    assert set(doc["paths"]["/api/v1/clinic/patients/"]) == {"get"}
    assert set(doc["paths"]["/api/v1/clinic/assessments/{record_id}"]) == {"patch", "delete"}
    score = doc["components"]["schemas"]["AssessmentsFieldsCreate"]["properties"]["score"]["anyOf"][0]
    assert (score["type"], score["minimum"], score["maximum"]) == ("integer", 0, 27)


def test_another_environment_s_document_is_not_found_and_a_token_is_required(client):
    make_environment("other")
    environment = make_environment("clinic")
    token = token_for(environment, ["patients:read"])
    assert document(client, "other", token).status_code == 404
    assert client.get("/api/v1/clinic/openapi.json").status_code == 401


def test_real_responses_match_the_environment_s_document(client):
    environment = make_environment("clinic", schema=DEMO_SCHEMA)
    token = token_for(environment, ["patients:read", "patients:write"])
    spec = OpenAPI.from_dict(document(client, "clinic", token).json())
    headers = {"Authorization": f"Bearer {token}"}
    body = {"external_id": "p-1", "fields": {"first_name": "Ada", "last_name": "Lovelace", "status": "active"}}
    responses = [
        client.post("/api/v1/clinic/patients/", json.dumps(body), content_type="application/json", headers=headers)
    ]
    record = responses[0].json()["id"]
    responses += [
        client.get("/api/v1/clinic/patients/?limit=1", headers=headers),
        client.get(f"/api/v1/clinic/patients/{record}", headers=headers),
        client.patch(
            f"/api/v1/clinic/patients/{record}",
            json.dumps({"fields": {"status": None}}),
            content_type="application/json",
            headers=headers,
        ),
        client.post("/api/v1/clinic/patients/", "{", content_type="application/json", headers=headers),
        client.get("/api/v1/clinic/events?limit=5", headers=headers),
        client.get("/api/v1/clinic/patients/changes?since=0", headers=headers),
    ]
    for response in responses:
        sent = response.wsgi_request
        # By its concrete path: Django's route is the global document's template.
        request = MockRequest("http://testserver", sent.method.lower(), sent.path, args=sent.GET)
        spec.validate_response(
            request, MockResponse(response.content, response.status_code, content_type=response["Content-Type"])
        )
    assert [r.status_code for r in responses] == [201, 200, 200, 200, 400, 200, 200]
