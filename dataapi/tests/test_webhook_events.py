"""A webhook's numbered events and status, read by the token of the client it serves; nobody else's.

`GET /api/v1/<environment>/webhooks/<id>/events?after=<n>` answers the events as the webhook's bodies carry
them, in order, without a gap; `…/status` says where the webhook stands. Every response matches the global
OpenAPI document.
"""

import datetime
import json

import pytest
from django.utils import timezone
from openapi_core import OpenAPI

from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from dataapi.tests.test_data_api import Api
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks import retention
from webhooks.configure import fields_of, update_webhook
from webhooks.delivery import bodies
from webhooks.models import Delivery, Webhook
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db

PATIENT = {"status": "active", "first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10"}
RECEIVER = "http://127.0.0.1:9999/hooks"


@pytest.fixture(scope="module")
def document(django_db_blocker) -> dict:
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/api/v1/openapi.json", HTTP_HOST="localhost")
    return response.json()


@pytest.fixture(scope="module")
def spec(document):
    return OpenAPI.from_dict(document)


@pytest.fixture(autouse=True)
def loopback_receivers_allowed(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def token_of(api_client) -> str:
    credential, _ = make_credential(api_client)
    return issue_token(api_client, credential, None, ip="127.0.0.1").access_token


@pytest.fixture
def env():
    return make_environment("clinic")


@pytest.fixture
def served(env):
    """A webhook sending only first names, serving an API client; three patients created."""
    app = make_client(env, scopes=["patients:read"])
    webhook = make_webhook(env, RECEIVER, client_id=app.client_id, payload_fields={"patients": ["first_name"]})
    for name in ("Ada", "Grace", "Edsger"):
        create_record(env, "patients", {**PATIENT, "first_name": name})
    return webhook, app


@pytest.fixture
def api(client, spec, served):
    return Api(client, token_of(served[1]), spec)


def events_path(webhook, query: str = "", slug: str = "clinic") -> str:
    return f"/api/v1/{slug}/webhooks/{webhook.pk}/events{query}"


def test_the_client_reads_the_events_by_number_shaped_as_the_webhook_s_bodies(api, served):
    webhook, _ = served
    response = api.call("get", events_path(webhook, "?after=0"))
    assert response.status_code == 200, response.content
    page = response.json()
    assert [event["sequence"] for event in page["events"]] == [1, 2, 3]
    assert page["next_cursor"] == "3"
    # Exactly as sent: the allow-list keeps the first name only.
    sent = [json.loads(bodies.body_of(each.pk, webhook)) for each in Delivery.objects.filter(webhook=webhook)]
    assert page["events"] == sorted(sent, key=lambda event: event["sequence"])
    assert [event["data"]["fields"] for event in page["events"]] == [
        {"first_name": "Ada"},
        {"first_name": "Grace"},
        {"first_name": "Edsger"},
    ]


def test_a_page_goes_on_from_the_cursor_and_an_empty_one_keeps_it(api, served):
    webhook, _ = served
    page = api.call("get", events_path(webhook, "?after=1&limit=1")).json()
    assert [event["sequence"] for event in page["events"]] == [2] and page["next_cursor"] == "2"
    page = api.call("get", events_path(webhook, "?after=3")).json()
    assert page == {"events": [], "next_cursor": "3"}


def test_a_thin_webhook_s_events_are_thin(api, served):
    webhook, _ = served
    fields = fields_of(webhook)
    fields.payload_format = Webhook.PayloadFormat.THIN
    update_webhook(webhook, fields)
    event = api.call("get", events_path(webhook, "?after=2")).json()["events"][0]
    assert set(event["data"]) == {"id", "data_type", "external_id"} and event["sequence"] == 3


def test_the_status_says_where_the_webhook_stands(api, served):
    webhook, _ = served
    first = Delivery.objects.filter(webhook=webhook).earliest("id")
    Delivery.objects.filter(pk=first.pk).update(status=Delivery.Status.SUCCEEDED)
    response = api.call("get", f"/api/v1/clinic/webhooks/{webhook.pk}/status")
    assert response.status_code == 200, response.content
    status = response.json()
    assert status["state"] == "active" and status["failing_since"] is None
    assert status["last_sequence"] == 3 and status["last_sequence_delivered"] == 1
    assert status["next_retry_at"] is None and status["heartbeat_minutes"] is None

    failing_since = timezone.now() - datetime.timedelta(minutes=5)
    retry_at = timezone.now() + datetime.timedelta(minutes=25)
    Webhook.objects.filter(pk=webhook.pk).update(failing_since=failing_since, heartbeat_minutes=15)
    Delivery.objects.filter(webhook=webhook, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.RETRYING, next_attempt_at=retry_at
    )
    status = api.call("get", f"/api/v1/clinic/webhooks/{webhook.pk}/status").json()
    assert (status["condition"], status["heartbeat_minutes"]) == ("failing", 15)
    assert datetime.datetime.fromisoformat(status["failing_since"]) == failing_since
    assert datetime.datetime.fromisoformat(status["next_retry_at"]) == retry_at


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_any_other_token_or_webhook_is_not_found(api, served, env):
    webhook, _ = served
    stranger = token_of(make_client(env, scopes=["patients:read"]))
    elsewhere = token_of(make_client(make_environment("lab"), scopes=["patients:read"]))
    assert error_of(api.call("get", events_path(webhook), token=stranger)) == (404, "not_found")
    assert error_of(api.call("get", f"/api/v1/clinic/webhooks/{webhook.pk}/status", token=stranger)) == (
        404,
        "not_found",
    )
    assert error_of(api.call("get", events_path(webhook, slug="lab"), token=elsewhere)) == (404, "not_found")
    assert error_of(api.call("get", events_path(webhook, slug="lab"))) == (404, "not_found")
    assert error_of(api.call("get", "/api/v1/clinic/webhooks/999999/events")) == (404, "not_found")
    assert error_of(api.call("get", "/api/v1/clinic/webhooks/abc/events")) == (404, "not_found")
    assert error_of(api.call("get", events_path(webhook), token=None)) == (401, "unauthorized")
    unserved = make_webhook(env, RECEIVER)
    assert error_of(api.call("get", events_path(unserved))) == (404, "not_found")


def test_numbers_no_longer_kept_are_gone_with_what_to_do(api, served):
    webhook, _ = served
    oldest = Delivery.objects.filter(webhook=webhook).earliest("id")
    Delivery.objects.filter(pk=oldest.pk).update(
        status=Delivery.Status.SUCCEEDED, created_at=oldest.created_at - datetime.timedelta(days=400)
    )
    assert retention.prune_deliveries(datetime.timedelta(days=90)) == 1

    response = api.call("get", events_path(webhook, "?after=0"))
    assert error_of(response) == (410, "events_gone")
    assert "resync" in response.json()["error"]["message"]
    assert response.json()["error"]["details"] == {"first_missing": 1, "last_sequence": 3}
    page = api.call("get", events_path(webhook, "?after=1")).json()
    assert [event["sequence"] for event in page["events"]] == [2, 3]

    # An erased payload is no longer kept either: the page stops before it, and the next one is gone.
    last = Delivery.objects.filter(webhook=webhook).latest("id")
    Delivery.objects.filter(pk=last.pk).update(payload_erased_at=timezone.now())
    page = api.call("get", events_path(webhook, "?after=1")).json()
    assert [event["sequence"] for event in page["events"]] == [2] and page["next_cursor"] == "2"
    assert error_of(api.call("get", events_path(webhook, "?after=2"))) == (410, "events_gone")


def test_the_paths_are_documented_and_take_no_record_route_s_requests(api, served, env, document):
    webhook, _ = served
    paths = document["paths"]
    assert "/api/v1/{environment}/webhooks/{webhook_id}/events" in paths
    assert "/api/v1/{environment}/webhooks/{webhook_id}/status" in paths
    record = create_record(env, "patients", PATIENT)
    response = api.call("get", f"/api/v1/clinic/patients/{record.pk}")
    assert response.status_code == 200 and response.json()["id"] == str(record.pk)
    # One segment more than a record's path: the webhook's events, not a record "events" of a type "webhooks".
    assert api.call("get", events_path(webhook)).status_code == 200
    assert error_of(api.call("get", f"/api/v1/clinic/webhooks/{webhook.pk}")) == (404, "unknown_data_type")
