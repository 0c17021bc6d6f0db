"""The Data API refuses input PostgreSQL or JSON cannot hold with a 400 that says what and where (issue 10)."""

import base64
import json

import pytest

from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.models import Event, Record
from environments.tests.bad_input import assert_json_refused
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db

P = "/api/v1/clinic/patients/"
SCHEMA = {
    "data_types": {
        "patients": {
            "fields": {
                "first_name": {"type": "string", "required": True},
                "weight_kg": {"type": "number"},
                "visits": {"type": "integer"},
            }
        },
        "workers": {"fields": {"name": {"type": "string"}}},
    }
}


@pytest.fixture
def call(client):
    api_client = make_client(make_environment("clinic", schema=SCHEMA))
    credential, _ = make_credential(api_client)
    token = issue_token(api_client, credential, None, ip="127.0.0.1").access_token

    def send(method: str, path: str, raw: str | None = None):
        headers = {"Authorization": f"Bearer {token}"}
        if raw is None:
            return getattr(client, method)(path, headers=headers)
        return getattr(client, method)(path, raw, content_type="application/json", headers=headers)

    return send


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ('{"fields": {"first_name": "A\\u0000"}}', "fields.first_name contains a NUL"),
        ('{"external_id": "x\\u0000", "fields": {"first_name": "A"}}', "external_id contains a NUL"),
        ('{"fields": {"first_name": "\\ud800"}}', "fields.first_name contains an unpaired surrogate"),
        ('{"fields": {"first_name": "A", "weight_kg": NaN}}', "NaN is not a JSON number"),
        ('{"fields": {"first_name": "A", "weight_kg": Infinity}}', "Infinity is not a JSON number"),
        ('{"fields": {"first_name": "A", "weight_kg": 1e400}}', "fields.weight_kg is too large"),
        ('{"fields": {"first_name": "A", "visits": ' + "9" * 5000 + "}}", "too many digits"),
        ('{"fields": {"first_name": "A", "visits": ' + "9" * 30 + "}}", "outside the 64-bit range"),
        ('{"fields": {"first_name": "A", "x": ' + "[" * 1500 + "]" * 1500 + "}}", "nested more than"),
        ('{"fields": {"first_name": "A", "x": ' + "[" * 40 + "]" * 40 + "}}", "nested more than 32 levels"),
        ('{"fields": {"first\\u0000": "A"}}', "a key at fields contains a NUL"),
    ],
)
def test_a_create_with_unstorable_json_is_refused_with_the_place_named(call, raw, where):
    error = assert_json_refused(call("post", P, raw), 400, "malformed_json")
    assert where in error["message"]
    assert not Record.objects.exists() and not Event.objects.exists()


@pytest.mark.parametrize(
    "raw",
    [
        '{"fields": {"first_name": "A\\u0000"}}',
        '{"external_id": "a\\u0000b"}',
        '{"fields": {"first_name": "\\udfff"}}',
        '{"fields": {"weight_kg": NaN}}',
    ],
)
def test_a_patch_with_unstorable_json_is_refused_and_changes_nothing(call, raw):
    created = call("post", P, json.dumps({"external_id": "p-1", "fields": {"first_name": "Ada"}})).json()
    assert_json_refused(call("patch", f"{P}{created['id']}", raw), 400, "malformed_json")
    assert call("get", f"{P}{created['id']}").json()["fields"] == {"first_name": "Ada"}


@pytest.mark.parametrize(
    "query",
    [
        "external_id=a%00b",
        f"cursor={cursor_of('[' * 1500)}",
        f"cursor={cursor_of('[1e400, 1]')}",
        f"cursor={cursor_of('NaN')}",
        "cursor=%00",
        "limit=99999999999999999999999",
        "updated_since=9999-12-31T23:59:59-14:00x",
    ],
)
def test_a_list_with_a_bad_query_is_a_400(call, query):
    assert_json_refused(call("get", f"{P}?{query}"), 400)


def test_a_body_too_large_for_django_is_a_json_413(call):
    response = call("post", P, '{"fields": {"first_name": "' + "a" * 3_000_000 + '"}}')
    assert_json_refused(response, 413, "payload_too_large")


@pytest.mark.parametrize("since", ["0.5", "1700000000", "yesterday"])
def test_updated_since_must_be_an_iso_date_time(call, since):
    assert_json_refused(call("get", f"{P}?updated_since={since}"), 400, "invalid_request")


@pytest.mark.parametrize(
    ("since", "count"),
    [("0318-07-05T17:00:45-23:37", 1), ("0001-01-01T00:00:00+14:00", 1), ("9999-12-31T23:59:59-14:00", 0)],
)
def test_updated_since_with_any_offset_or_calendar_edge_is_answered(call, since, count):
    call("post", P, json.dumps({"fields": {"first_name": "Ada"}}))
    response = call("get", f"{P}?updated_since={since.replace('+', '%2B')}")
    assert response.status_code == 200
    assert len(response.json()["data"]) == count


def test_null_means_not_set_and_an_integral_number_is_an_integer(call):
    created = call("post", P, json.dumps({"fields": {"first_name": "Ada", "weight_kg": None, "visits": 3.0}}))
    assert created.status_code == 201
    assert created.json()["fields"] == {"first_name": "Ada", "visits": 3}
    assert Record.objects.get().data == {"first_name": "Ada", "visits": 3}
    assert call("post", P, json.dumps({"fields": {"first_name": "Ada", "visits": 3.5}})).status_code == 400
