"""Minimum-necessary payloads: per webhook and data type, exactly the chosen fields leave the environment."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from environments.configurations import publish_version, save_draft
from environments.demo import DEMO_SCHEMA
from environments.models import AuditEvent
from environments.records import create_record, delete_record, update_record
from environments.tests.browser import log_in
from environments.tests.factories import grant, log_in_director, make_environment, make_user
from webhooks.configure import WebhookInvalid, fields_of, update_webhook
from webhooks.delivery import bodies
from webhooks.delivery.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "birth_date": "1815-12-10"}
FULL_RECORDS = {
    "patients": {**ADA, "status": "active"},
    "workers": {"name": "Grace Hopper", "email": "grace@example.org", "role": "physician"},
    "assessments": {"patient_id": "p-1", "score": 12, "completed_at": "2026-01-15T09:30:00Z"},
}


def sent(receiver) -> list[dict]:
    return [json.loads(request.body) for request in receiver.requests]


def deliver_all(webhook) -> None:
    for delivery in webhook.deliveries.order_by("id"):
        attempt_delivery(delivery.pk)


@pytest.fixture
def env():
    return make_environment("clinic")


def test_only_the_chosen_fields_and_changes_leave(env):
    with Receiver() as receiver:
        webhook = make_webhook(
            env,
            receiver.url,
            event_types=["patients.created", "patients.updated"],
            payload_fields={"patients": ["first_name"]},
        )
        record = create_record(env, "patients", ADA)
        update_record(record, {"last_name": "Byron", "first_name": "Augusta"})
        deliver_all(webhook)
    created, updated = sent(receiver)
    assert created["data"]["fields"] == {"first_name": "Ada"}
    assert updated["data"]["fields"] == {"first_name": "Augusta"}
    assert updated["data"]["changed_fields"] == ["first_name"]  # that last_name changed is not told either
    assert "Lovelace" not in receiver.requests[0].text and "ada@example.org" not in receiver.requests[0].text


@pytest.mark.parametrize("data_type", sorted(FULL_RECORDS))
def test_the_preview_has_the_shape_of_what_is_sent_for_every_event_type(env, data_type):
    chosen = {"patients": ["first_name", "email"], "workers": ["name"], "assessments": ["score"]}
    event_types = [f"{data_type}.{action}" for action in ("created", "updated", "deleted")]
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=event_types, payload_fields=chosen)
        record = create_record(env, data_type, FULL_RECORDS[data_type])
        first_field = next(iter(FULL_RECORDS[data_type]))
        update_record(record, {first_field: FULL_RECORDS[data_type][first_field] + " changed"})
        delete_record(record)
        deliver_all(webhook)
    for request, delivery in zip(receiver.requests, webhook.deliveries.order_by("id"), strict=True):
        # What was sent is exactly what the render the preview uses makes of the same event...
        assert request.text == bodies.body_of(delivery.pk, webhook)
    for body in sent(receiver):
        # ...and the preview of its type has the same shape: the same keys, the same chosen fields.
        preview = json.loads(bodies.preview(webhook, body["type"]))
        assert preview.keys() == body.keys()
        assert preview["data"].keys() == body["data"].keys(), body["type"]
        assert preview["data"]["fields"].keys() == body["data"]["fields"].keys() == set(chosen[data_type])


def test_a_field_added_to_the_schema_later_reaches_only_webhooks_that_did_not_choose(env):
    with Receiver() as chose, Receiver() as all_fields:
        narrow = make_webhook(env, chose.url, name="Narrow", payload_fields={"patients": ["first_name", "last_name"]})
        wide = make_webhook(env, all_fields.url, name="Wide")
        schema = json.loads(json.dumps(DEMO_SCHEMA))
        schema["data_types"]["patients"]["fields"]["diagnosis"] = {"type": "string"}
        publish_version(save_draft(env.configuration, schema), [env])
        env.refresh_from_db()
        create_record(env, "patients", {**ADA, "diagnosis": "confidential"})
        deliver_all(narrow)
        deliver_all(wide)
    assert sent(chose)[0]["data"]["fields"] == {"first_name": "Ada", "last_name": "Lovelace"}
    assert sent(all_fields)[0]["data"]["fields"]["diagnosis"] == "confidential"


def test_changing_the_fields_is_audited_with_before_and_after_and_checked_against_the_schema(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
    fields = fields_of(webhook)
    fields.payload_fields = {"patients": ["email", "first_name"]}
    update_webhook(webhook, fields)
    change = AuditEvent.objects.get(action="webhook.updated").details["changes"]["payload_fields"]
    assert change == {"from": {}, "to": {"patients": ["email", "first_name"]}}

    fields.payload_fields = {"patients": ["shoe_size"]}
    with pytest.raises(WebhookInvalid, match="patients has no field shoe_size"):
        update_webhook(webhook, fields)
    fields.payload_fields = {"invoices": ["total"]}
    with pytest.raises(WebhookInvalid, match="“invoices” is not a data type of Clinic"):
        update_webhook(webhook, fields)


def test_the_form_chooses_fields_and_the_page_previews_the_exact_body(client, env):
    log_in_director(client, env)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"])
    form = client.get(f"/e/clinic/webhooks/{webhook.pk}/edit/").content.decode()
    assert 'value="patients.*"' in form and 'value="patients.first_name"' in form
    data = {
        "name": webhook.name,
        "url": webhook.url,
        "event_types": ["patients.created"],
        "security_method": "secret",
        "verify_tls": "on",
        "payload_format": "full",
        "payload_fields": ["patients.first_name", "patients.status", "workers.*", "workers.name"],
        "payload_fields_shown": "1",
        "max_events_per_request": "1",
        "timeout_seconds": "15",
        "extra_headers": "",
    }
    response = client.post(f"/e/clinic/webhooks/{webhook.pk}/edit/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    webhook.refresh_from_db()
    assert webhook.payload_fields == {"assessments": [], "patients": ["first_name", "status"]}
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert "patients: <code>first_name</code>, <code>status</code>" in page
    assert "&quot;first_name&quot;: &quot;text&quot;" in page and "&quot;last_name&quot;" not in page


def test_the_command_takes_fields_per_data_type(env):
    out = StringIO()
    with Receiver() as receiver:
        url = receiver.url
    call_command(
        "create_webhook",
        "--environment=clinic",
        "--name=Lab",
        f"--url={url}",
        "--events=patients.created",
        "--fields=patients=first_name,last_name",
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["payload_fields"] == {"patients": ["first_name", "last_name"]}


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1440])
def test_choosing_fields_in_the_browser_changes_the_preview(page, env, width):
    grant(make_user("dana"), env)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"])
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto(f"/e/clinic/webhooks/{webhook.pk}/edit/")
    chooser = page.locator("#id_payload_fields fieldset", has_text="Patients")
    chooser.get_by_label("every field of patients, those added later too").uncheck()
    for name in ("last_name", "birth_date", "email", "status"):
        chooser.get_by_label(name, exact=True).uncheck()
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/webhooks/{webhook.pk}/")
    settings_text = page.locator("#settings").inner_text()
    assert "patients: first_name" in settings_text
    page.locator("#settings summary", has_text="patients.created").click()
    preview = page.locator("#settings pre").first.inner_text()
    assert '"first_name": "text"' in preview and "last_name" not in preview
    assert page.evaluate("document.documentElement.scrollWidth") <= width
