"""The Data API: tokens, scopes, validation, pagination, JSON errors; every response matches the OpenAPI document."""

import json
import uuid

import pytest
from openapi_core import OpenAPI
from openapi_core.contrib.django import DjangoOpenAPIRequest, DjangoOpenAPIResponse

from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.configurations import publish_document
from environments.demo import DEMO_SCHEMA
from environments.models import Event, Record
from environments.records import create_record, update_record
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db

ADA = {"first_name": "Ada", "last_name": "Lovelace"}


class Api:
    """A Data API caller holding a token, that checks every response against the OpenAPI document."""

    def __init__(self, client, token: str, spec: OpenAPI):
        self.client, self.token, self.spec = client, token, spec

    def call(self, method: str, path: str, body=None, *, token: str | None = "default", documented=True, **kwargs):
        headers = kwargs.pop("headers", {})
        token = self.token if token == "default" else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None and "content_type" not in kwargs:
            kwargs["content_type"] = "application/json"
            body = json.dumps(body)
        send = getattr(self.client, method)
        response = send(path, body, headers=headers, **kwargs) if body is not None else send(path, headers=headers)
        if documented and response.status_code in (200, 201, 204, 400, 403, 404, 409, 413, 415):
            self.spec.validate_response(DjangoOpenAPIRequest(response.wsgi_request), DjangoOpenAPIResponse(response))
        return response


@pytest.fixture
def env():
    return make_environment("clinic")


def api_for(client, env, openapi_document, scopes=None) -> Api:
    api_client = make_client(env, scopes=scopes)
    credential, _ = make_credential(api_client)
    issued = issue_token(api_client, credential, None, ip="127.0.0.1")
    return Api(client, issued.access_token, OpenAPI.from_dict(openapi_document))


@pytest.fixture
def api(client, env, openapi_document):
    return api_for(client, env, openapi_document)


def error_code(response):
    return response.status_code, response.json()["error"]["code"]


def test_the_openapi_document_describes_every_operation(openapi_document):
    paths = openapi_document["paths"]
    assert set(paths["/api/v1/{environment}/{data_type}/"]) == {"get", "post"}
    assert set(paths["/api/v1/{environment}/{data_type}/{record_id}"]) == {"get", "patch", "delete"}
    assert openapi_document["components"]["securitySchemes"] == {"BearerToken": {"type": "http", "scheme": "bearer"}}


def test_create_read_update_delete_each_emit_their_event(api):
    created = api.call("post", "/api/v1/clinic/patients/", {"external_id": "p-1", "fields": ADA})
    assert created.status_code == 201
    record = created.json()
    assert (record["external_id"], record["fields"]) == ("p-1", ADA)

    url = f"/api/v1/clinic/patients/{record['id']}"
    assert api.call("get", url).json() == record

    patched = api.call("patch", url, {"fields": {"status": "active"}})
    assert patched.status_code == 200
    assert patched.json()["fields"] == {**ADA, "status": "active"}

    assert api.call("delete", url).status_code == 204
    assert error_code(api.call("get", url)) == (404, "not_found")
    assert list(Event.objects.order_by("id").values_list("type", flat=True)) == [
        "patients.created",
        "patients.updated",
        "patients.deleted",
    ]


def test_invalid_fields_are_named_one_by_one_and_nothing_is_stored(api):
    response = api.call("post", "/api/v1/clinic/patients/", {"fields": {"first_name": 5, "shoe": 1}})
    assert error_code(response) == (400, "invalid_fields")
    assert response.json()["error"]["details"] == {
        "first_name": "must be a string",
        "last_name": "this field is required",
        "shoe": "unknown field",
    }
    assert not Record.objects.exists()
    assert not Event.objects.exists()


def test_a_duplicate_external_id_is_a_conflict(api):
    api.call("post", "/api/v1/clinic/patients/", {"external_id": "p-1", "fields": ADA})
    response = api.call("post", "/api/v1/clinic/patients/", {"external_id": "p-1", "fields": ADA})
    assert error_code(response) == (409, "duplicate_external_id")
    assert Record.objects.count() == 1


def test_malformed_json_wrong_type_and_oversized_bodies_get_their_own_errors(api, settings):
    url = "/api/v1/clinic/patients/"
    malformed = api.call("post", url, '{"fields": ', content_type="application/json")
    assert error_code(malformed) == (400, "malformed_json")
    form = api.call("post", url, "fields=1", content_type="application/x-www-form-urlencoded")
    assert error_code(form) == (415, "unsupported_media_type")
    settings.API_MAX_BODY_BYTES = 64
    big = api.call("post", url, {"fields": {"first_name": "A" * 100, "last_name": "L"}})
    assert error_code(big) == (413, "payload_too_large")
    assert not Record.objects.exists()


def test_unknown_body_keys_are_refused_with_their_location(api):
    response = api.call("post", "/api/v1/clinic/patients/", {"fields": ADA, "colour": "red"})
    assert error_code(response) == (400, "invalid_request")
    assert any("colour" in detail["location"] for detail in response.json()["error"]["details"])


def test_a_missing_token_is_401_with_a_bearer_challenge(api):
    response = api.call("get", "/api/v1/clinic/patients/", token=None)
    assert error_code(response) == (401, "unauthorized")
    assert response["WWW-Authenticate"] == 'Bearer realm="Integration Tools"'


def test_an_unknown_token_is_invalid_token(api):
    response = api.call("get", "/api/v1/clinic/patients/", token="itat_forged")
    assert error_code(response) == (401, "invalid_token")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_scopes_are_enforced_per_data_type_and_verb(client, env, openapi_document):
    reader = api_for(client, env, openapi_document, scopes=["patients:read"])
    assert reader.call("get", "/api/v1/clinic/patients/").status_code == 200
    response = reader.call("post", "/api/v1/clinic/patients/", {"fields": ADA})
    assert error_code(response) == (403, "insufficient_scope")
    assert response["WWW-Authenticate"].endswith('scope="patients:write"')
    assert error_code(reader.call("get", "/api/v1/clinic/workers/")) == (403, "insufficient_scope")


def test_a_token_for_one_environment_gets_404_on_another(client, env, openapi_document, api):
    other = make_environment("lab", configuration=env.configuration)
    create_record(other, "patients", ADA)
    assert error_code(api.call("get", "/api/v1/lab/patients/")) == (404, "not_found")
    other_record = Record.objects.get(environment=other)
    assert error_code(api.call("get", f"/api/v1/clinic/patients/{other_record.id}")) == (404, "not_found")
    assert error_code(api.call("get", "/api/v1/nowhere/patients/")) == (404, "not_found")


def test_unknown_data_types_ids_and_methods(api):
    assert error_code(api.call("get", "/api/v1/clinic/visits/")) == (404, "unknown_data_type")
    assert error_code(api.call("get", "/api/v1/clinic/patients/not-a-uuid")) == (404, "not_found")
    assert error_code(api.call("get", f"/api/v1/clinic/patients/{uuid.uuid4()}")) == (404, "not_found")
    put = api.call("put", "/api/v1/clinic/patients/", {"fields": ADA})
    assert error_code(put) == (405, "method_not_allowed")
    assert error_code(api.call("get", "/api/v1/clinic/", documented=False)) == (404, "not_found")


def page_through(api, query: str = "", limit: int = 2):
    seen, cursor = [], None
    for _ in range(50):
        url = f"/api/v1/clinic/patients/?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        body = api.call("get", url).json()
        seen += [record["id"] for record in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_cursor_pagination_returns_every_record_once(api, env):
    ids = {str(create_record(env, "patients", {**ADA, "first_name": f"P{n}"}).id) for n in range(5)}
    seen = page_through(api)
    assert sorted(seen) == sorted(ids)


def test_a_record_changed_during_pagination_is_not_skipped(api, env):
    records = [create_record(env, "patients", {**ADA, "first_name": f"P{n}"}) for n in range(4)]
    first_page = api.call("get", "/api/v1/clinic/patients/?limit=2").json()
    # While the integrator pages, someone edits a record it has not reached yet, and one it has.
    update_record(records[3], {"status": "active"})
    update_record(records[0], {"status": "active"})
    rest, cursor = [], first_page["next_cursor"]
    while cursor:
        body = api.call("get", f"/api/v1/clinic/patients/?limit=2&cursor={cursor}").json()
        rest += [r["id"] for r in body["data"]]
        cursor = body["next_cursor"]
    seen = [r["id"] for r in first_page["data"]] + rest
    assert {str(r.id) for r in records} <= set(seen)


def test_filters_by_updated_since_and_external_id(api, env):
    old = create_record(env, "patients", ADA, external_id="old")
    new = create_record(env, "patients", ADA, external_id="new")
    since = new.updated_at.isoformat().replace("+00:00", "Z")
    body = api.call("get", f"/api/v1/clinic/patients/?updated_since={since}").json()
    assert [r["id"] for r in body["data"]] == [str(new.id)]
    body = api.call("get", "/api/v1/clinic/patients/?external_id=old").json()
    assert [r["id"] for r in body["data"]] == [str(old.id)]


def test_bad_query_parameters_are_400(api):
    assert error_code(api.call("get", "/api/v1/clinic/patients/?limit=0")) == (400, "invalid_request")
    assert error_code(api.call("get", "/api/v1/clinic/patients/?cursor=garbage")) == (400, "invalid_cursor")
    assert error_code(api.call("get", "/api/v1/clinic/patients/?updated_since=yesterday")) == (400, "invalid_request")


def test_patch_can_change_and_clear_the_external_id(api, env):
    record = create_record(env, "patients", ADA, external_id="p-1")
    url = f"/api/v1/clinic/patients/{record.id}"
    assert api.call("patch", url, {"external_id": "p-2"}).json()["external_id"] == "p-2"
    assert api.call("patch", url, {"fields": {"status": "active"}}).json()["external_id"] == "p-2"
    assert api.call("patch", url, {"external_id": None}).json()["external_id"] is None
    bad = api.call("patch", url, {"fields": {"last_name": None}})
    assert error_code(bad) == (400, "invalid_fields")


def test_after_a_breaking_publish_a_patch_is_judged_on_the_fields_it_sends(api, env):
    record = create_record(env, "patients", {**ADA, "status": "discharged", "email": "ada@example.org"})
    stricter = json.loads(json.dumps(DEMO_SCHEMA))
    patients = stricter["data_types"]["patients"]["fields"]
    patients["status"]["choices"] = ["active"]  # the record's value is gone
    patients["birth_date"]["required"] = True  # the record has none
    patients["first_name"]["max_length"] = 2  # "Ada" is too long now
    publish_document(stricter, ["clinic"], accept_invalid_records=True)
    url = f"/api/v1/clinic/patients/{record.id}"

    changed = api.call("patch", url, {"fields": {"last_name": "Byron", "email": None}})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["fields"] == {"first_name": "Ada", "last_name": "Byron", "status": "discharged"}

    refused = api.call("patch", url, {"fields": {"first_name": "Augusta", "status": "discharged", "last_name": None}})
    assert error_code(refused) == (400, "invalid_fields")
    assert refused.json()["error"]["details"] == {
        "first_name": "must be at most 2 characters (got 7)",
        "status": "must be one of active",
        "last_name": "this field is required",
    }
    assert api.call("patch", url, {"fields": {"birth_date": "yesterday"}}).json()["error"]["details"] == {
        "birth_date": "must be a date as YYYY-MM-DD"
    }
    assert api.call("patch", url, {"fields": {"nickname": "A"}}).json()["error"]["details"] == {
        "nickname": "unknown field"
    }

    fixed = api.call("patch", url, {"fields": {"status": "active", "birth_date": "1815-12-10"}})
    assert fixed.status_code == 200
    assert Record.objects.get(pk=record.pk).data == {
        "first_name": "Ada",
        "last_name": "Byron",
        "status": "active",
        "birth_date": "1815-12-10",
    }
