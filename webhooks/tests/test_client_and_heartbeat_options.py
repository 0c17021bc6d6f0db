"""A webhook names the API client it serves and its heartbeat, through the form and both commands, and its page
shows how far its numbered events have got."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from credentials.tests.factories import make_client
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.models import Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.test_policy_form import form

pytestmark = pytest.mark.django_db(transaction=True)
URL = "http://127.0.0.1:8009/hook"
PATIENT = {"status": "active", "first_name": "Ada", "last_name": "Lovelace", "birth_date": "1985-12-10"}


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_webhook_takes_the_client_and_heartbeat_and_json_shows_both():
    environment = make_environment("clinic")
    app = make_client(environment)
    created = json.loads(
        run(
            "create_webhook", "--environment", "clinic", "--name", "EHR", "--url", URL, "--events", "patients.created",
            "--client", app.client_id, "--heartbeat-minutes", "15", "--json",
        )
    )  # fmt: skip
    assert (created["client"], created["heartbeat_minutes"]) == (app.client_id, 15)
    webhook = Webhook.objects.get(name="EHR")
    assert (webhook.client, webhook.heartbeat_minutes) == (app, 15)
    plain = json.loads(
        run("create_webhook", "--environment", "clinic", "--name", "Lab", "--url", URL, "--events", "patients.created",
            "--json")
    )  # fmt: skip
    assert (plain["client"], plain["heartbeat_minutes"]) == (None, None)


def test_change_webhook_sets_and_clears_the_client_and_heartbeat():
    environment = make_environment("clinic")
    app = make_client(environment)
    webhook = make_webhook(environment, URL, name="EHR")
    changed = json.loads(
        run("change_webhook", "clinic/EHR", "--client", app.client_id, "--heartbeat-minutes", "60", "--json")
    )
    assert (changed["client"], changed["heartbeat_minutes"]) == (app.client_id, 60)
    run("change_webhook", "clinic/EHR", "--name", "EHR 2")  # flags not given keep what the webhook has
    webhook.refresh_from_db()
    assert (webhook.client, webhook.heartbeat_minutes) == (app, 60)
    cleared = json.loads(
        run("change_webhook", str(webhook.pk), "--client", "", "--heartbeat-minutes", "none", "--json")
    )
    assert (cleared["client"], cleared["heartbeat_minutes"]) == (None, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heartbeat-minutes", "0"], "heartbeat_minutes: between 1 and 1440 minutes"),
        (["--heartbeat-minutes", "1441"], "heartbeat_minutes: between 1 and 1440 minutes"),
        (["--client", "no-such-client"], "client: Clinic has no API client “no-such-client”"),
    ],
)
def test_bad_client_or_heartbeat_is_named_and_changes_nothing(args, message):
    environment = make_environment("clinic")
    webhook = make_webhook(environment, URL, name="EHR")
    with pytest.raises(CommandError, match=message):
        run("change_webhook", "clinic/EHR", *args)
    webhook.refresh_from_db()
    assert (webhook.client, webhook.heartbeat_minutes) == (None, None)


def test_a_client_of_another_environment_is_refused():
    environment = make_environment("clinic")
    elsewhere = make_client(make_environment("lab"))
    make_webhook(environment, URL, name="EHR")
    with pytest.raises(CommandError, match="client: Clinic has no API client"):
        run("change_webhook", "clinic/EHR", "--client", elsewhere.client_id)


def test_the_form_takes_the_client_and_heartbeat_and_a_post_without_the_client_keeps_it(client, director, env):
    app = make_client(env)
    other = make_client(make_environment("lab"))
    page = client.get("/e/clinic/webhooks/new/").content.decode()
    assert app.client_id in page and other.client_id not in page
    client.post("/e/clinic/webhooks/new/", form(client=app.client_id, heartbeat_minutes="30"))
    webhook = Webhook.objects.get(name="EHR")
    assert (webhook.client, webhook.heartbeat_minutes) == (app, 30)

    response = client.post(f"/e/clinic/webhooks/{webhook.pk}/edit/", form(heartbeat_minutes="2000"))
    assert "between 1 and 1440" in response.content.decode().lower() or "less than or equal to 1440" in (
        response.content.decode()
    )
    webhook.refresh_from_db()
    assert webhook.heartbeat_minutes == 30
    client.post(f"/e/clinic/webhooks/{webhook.pk}/edit/", form(heartbeat_minutes=""))
    webhook.refresh_from_db()
    assert (webhook.client, webhook.heartbeat_minutes) == (app, None)  # no client field posted: kept


def test_the_page_shows_the_last_number_delivered_and_given_and_the_client(client, director, env):
    app = make_client(env, name="Care app")
    webhook = make_webhook(env, URL, client_id=app.client_id, heartbeat_minutes=10)
    for _ in range(3):
        create_record(env, "patients", PATIENT)
    first = Delivery.objects.filter(webhook=webhook).earliest("id")
    Delivery.objects.filter(pk=first.pk).update(status=Delivery.Status.SUCCEEDED)
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert "last delivered 1, last given 3" in page
    assert "Care app" in page and app.client_id in page
    assert "after 10 quiet minutes" in page
