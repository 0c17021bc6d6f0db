"""The events feed and the changes listing over HTTP: scopes, cursors, long-polls and errors, as documented."""

import threading
import time

import pytest
from django.db import connection
from django.test import Client

from dataapi.tests.test_data_api import ADA, api_for
from environments.models import EventStream
from environments.records import create_record, delete_record, update_record
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db


@pytest.fixture
def env():
    return make_environment("clinic")


def test_the_feed_gives_events_in_position_order_shaped_as_webhook_bodies_with_their_position(
    client, env, openapi_document
):
    api = api_for(client, env, openapi_document)
    ada = create_record(env, "patients", ADA)
    update_record(ada, {"first_name": "Augusta"})

    body = api.call("get", "/api/v1/clinic/events").json()

    first, second = body["events"]
    assert [first["type"], second["type"]] == ["patients.created", "patients.updated"]
    assert first["position"] < second["position"] and body["next_cursor"] == str(second["position"])
    assert first["id"].startswith("evt_") and first["environment"] == "clinic"
    assert second["data"]["fields"]["first_name"] == "Augusta" and second["data"]["changed_fields"] == ["first_name"]
    again = api.call("get", f"/api/v1/clinic/events?after={body['next_cursor']}").json()
    assert again == {"events": [], "next_cursor": body["next_cursor"]}


def test_the_feed_pages_by_limit_and_shows_only_the_data_types_the_token_may_read(client, env, openapi_document):
    patients_only = api_for(client, env, openapi_document, scopes=["patients:read"])
    for n in range(3):
        create_record(env, "patients", {**ADA, "first_name": f"P{n}"})
        create_record(env, "workers", {"name": f"W{n}", "email": f"w{n}@example.org", "role": "physician"})

    page = patients_only.call("get", "/api/v1/clinic/events?limit=2").json()
    rest = patients_only.call("get", f"/api/v1/clinic/events?limit=2&after={page['next_cursor']}").json()

    names = [event["data"]["fields"]["first_name"] for event in page["events"] + rest["events"]]
    assert names == ["P0", "P1", "P2"]
    assert {event["type"] for event in page["events"] + rest["events"]} == {"patients.created"}


def test_a_token_that_reads_no_data_type_is_refused_the_feed(client, env, openapi_document):
    writer = api_for(client, env, openapi_document, scopes=["patients:write"])
    response = writer.call("get", "/api/v1/clinic/events")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


def test_a_bad_cursor_is_a_400_and_a_pruned_one_a_410_that_says_to_resync(client, env, openapi_document):
    api = api_for(client, env, openapi_document)
    for n in range(3):
        create_record(env, "patients", {**ADA, "first_name": f"P{n}"})
    api.call("get", "/api/v1/clinic/events")
    EventStream.objects.filter(environment=env).update(pruned_through=2)

    bad = api.call("get", "/api/v1/clinic/events?after=yesterday")
    gone = api.call("get", "/api/v1/clinic/events?after=1")

    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["location"] == "query.after"
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "cursor_expired" and "resync" in gone.json()["error"]["message"]
    assert len(api.call("get", "/api/v1/clinic/events?after=2").json()["events"]) == 1
    assert len(api.call("get", "/api/v1/clinic/events").json()["events"]) == 1, "no cursor: from the oldest kept"


def test_another_environments_feed_is_not_found(client, env, openapi_document):
    make_environment("other")
    api = api_for(client, env, openapi_document)
    assert api.call("get", "/api/v1/other/events").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_answers_when_a_change_commits(env, openapi_document):
    api = api_for(Client(), env, openapi_document)
    cursor = api.call("get", "/api/v1/clinic/events").json()["next_cursor"]

    def write_soon():
        time.sleep(0.4)
        create_record(env, "patients", ADA)
        connection.close()

    writer = threading.Thread(target=write_soon)
    started = time.monotonic()
    writer.start()
    body = api.call("get", f"/api/v1/clinic/events?after={cursor}&wait=10").json()
    waited = time.monotonic() - started
    writer.join()

    assert [event["type"] for event in body["events"]] == ["patients.created"]
    assert 0.4 <= waited < 3


def test_wait_beyond_30_seconds_is_refused(client, env, openapi_document):
    api = api_for(client, env, openapi_document)
    response = api.call("get", "/api/v1/clinic/events?wait=31")
    assert response.status_code == 400


def test_a_full_listing_gives_the_stream_position_and_changes_after_it_include_deletions(client, env, openapi_document):
    api = api_for(client, env, openapi_document)
    kept = create_record(env, "patients", ADA)
    gone = create_record(env, "patients", {**ADA, "first_name": "Gone"})
    listing = api.call("get", "/api/v1/clinic/patients/").json()
    gone_id = str(gone.id)

    update_record(kept, {"first_name": "Kept"})
    delete_record(gone)
    created = create_record(env, "patients", {**ADA, "first_name": "New"})
    changes = api.call("get", f"/api/v1/clinic/patients/changes?since={listing['stream_position']}").json()

    assert [(change["id"], change["deleted"]) for change in changes["changes"]] == [
        (str(kept.id), False),
        (gone_id, True),
        (str(created.id), False),
    ]
    assert changes["changes"][0]["record"]["fields"]["first_name"] == "Kept"
    assert changes["changes"][1]["record"] is None and changes["has_more"] is False
    after = api.call("get", f"/api/v1/clinic/patients/changes?since={changes['next_since']}").json()
    assert after["changes"] == []


def test_changes_need_the_read_scope_and_a_since(client, env, openapi_document):
    writer = api_for(client, env, openapi_document, scopes=["patients:write"])
    reader = api_for(client, env, openapi_document, scopes=["patients:read"])
    assert writer.call("get", "/api/v1/clinic/patients/changes?since=0").status_code == 403
    assert reader.call("get", "/api/v1/clinic/patients/changes").status_code == 400
    assert reader.call("get", "/api/v1/clinic/patients/changes?since=-1").status_code == 400
