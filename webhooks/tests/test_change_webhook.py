"""`create_webhook` and `change_webhook` take the sending policy; a change touches only what it is given."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import WORKER_TEST_ENV, manage_py
from environments.models import AuditEvent
from environments.tests.factories import make_environment
from webhooks.models import Webhook
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db(transaction=True)
URL = "http://127.0.0.1:8009/hook"


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_webhook_takes_and_prints_the_sending_policy(settings):
    make_environment("clinic")
    created = json.loads(
        run(
            "create_webhook", "--environment", "clinic", "--name", "EHR", "--url", URL, "--events", "patients.created",
            "--ordering", "record", "--max-in-flight", "8", "--max-per-second", "2.5", "--json",
        )
    )  # fmt: skip
    assert (created["ordering"], created["max_in_flight"], created["max_per_second"]) == ("record", 8, 2.5)

    said = run(
        "create_webhook", "--environment", "clinic", "--name", "Lab", "--url", URL, "--events", "patients.created",
        "--ordering", "strict", "--max-per-second", "none",
    )  # fmt: skip
    assert said.startswith(
        f"Created webhook “Lab” ({Webhook.objects.get(name='Lab').pk}) in clinic, posting to {URL}; "
    )
    assert "it sends strictly in order, one at a time.\n" in said
    assert Webhook.objects.get(name="Lab").max_per_second is None

    plain = json.loads(
        run("create_webhook", "--environment", "clinic", "--name", "Lims", "--url", URL, "--events", "patients.created",
            "--json")
    )  # fmt: skip
    assert (plain["ordering"], plain["max_in_flight"], plain["max_per_second"]) == (
        "none",
        settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK,
        None,
    )


def test_change_webhook_changes_only_the_flags_given_and_audits_as_the_command():
    environment = make_environment("clinic")
    webhook = make_webhook(
        environment, URL, name="EHR", max_in_flight=6, max_per_second=3.0, extra_headers={"X-Team": "ops"}
    )

    changed = json.loads(run("change_webhook", "clinic/EHR", "--ordering", "strict", "--json"))

    assert changed["ordering"] == "strict"
    assert (changed["name"], changed["url"], changed["max_in_flight"], changed["max_per_second"]) == (
        "EHR",
        URL,
        6,
        3.0,
    )
    webhook.refresh_from_db()
    assert webhook.ordering == "strict" and webhook.extra_headers == {"X-Team": "ops"}
    assert webhook.event_types == ["patients.created", "patients.deleted", "patients.updated"]
    event = AuditEvent.objects.get(action="webhook.updated")
    assert event.actor_label == "manage.py change_webhook"
    assert event.details["changes"] == {"ordering": {"from": "none", "to": "strict"}}


def test_change_webhook_sets_name_url_events_and_policy_and_says_how_it_sends():
    environment = make_environment("clinic")
    webhook = make_webhook(environment, URL, name="EHR", verify_tls=False)

    said = run(
        "change_webhook", str(webhook.pk), "--name", "EHR v2", "--url", "http://127.0.0.1:8010/v2",
        "--events", "patients.updated", "--ordering", "record", "--max-in-flight", "2", "--max-per-second", "10",
        "--verify-tls",
    )  # fmt: skip

    assert said.strip() == (
        f"Changed webhook “EHR v2” ({webhook.pk}) in clinic, posting to http://127.0.0.1:8010/v2; "
        "it sends in order per record, at most 2 at a time, 10/s."
    )
    webhook.refresh_from_db()
    assert (webhook.name, webhook.url, webhook.event_types) == (
        "EHR v2",
        "http://127.0.0.1:8010/v2",
        ["patients.updated"],
    )
    assert (webhook.ordering, webhook.max_in_flight, webhook.max_per_second, webhook.verify_tls) == (
        "record",
        2,
        10.0,
        True,
    )


@pytest.mark.parametrize("cleared", ["none", "0"])
def test_change_webhook_max_per_second_none_or_0_removes_the_limit(cleared):
    environment = make_environment("clinic")
    webhook = make_webhook(environment, URL, name="EHR", max_per_second=5.0)

    assert (
        json.loads(run("change_webhook", "clinic/EHR", "--max-per-second", cleared, "--json"))["max_per_second"] is None
    )
    webhook.refresh_from_db()
    assert webhook.max_per_second is None


def test_change_webhook_given_nothing_new_changes_nothing_and_records_nothing():
    environment = make_environment("clinic")
    make_webhook(environment, URL, name="EHR", ordering="record")

    said = run("change_webhook", "clinic/EHR", "--ordering", "record")

    assert said.startswith("Nothing to change: already as given: webhook “EHR”")
    assert not AuditEvent.objects.filter(action="webhook.updated").exists()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--max-in-flight", "0"], "CommandError: max_in_flight: between 1 and 256"),
        (["--max-in-flight", "257"], "CommandError: max_in_flight: between 1 and 256"),
        (
            ["--max-per-second", "5000"],
            "CommandError: max_per_second: between 0.01 and 1000 requests per second, or none",
        ),
        (["--url", "http://169.254.169.254/"], "link-local"),
        (["--events", "nothing.happened"], "CommandError: event_types: not event types of"),
    ],
)
def test_change_webhook_bad_input_is_one_line_exit_1_and_changes_nothing(args, line):
    environment = make_environment("clinic")
    webhook = make_webhook(environment, URL, name="EHR", max_in_flight=4)

    completed = manage_py("change_webhook", "clinic/EHR", *args, **WORKER_TEST_ENV)

    assert completed.returncode == 1, completed.stdout
    [said] = completed.stderr.strip().splitlines()
    assert line in said
    assert Webhook.objects.get(pk=webhook.pk).max_in_flight == 4
    assert not AuditEvent.objects.filter(action="webhook.updated").exists()


def test_change_webhook_names_an_unknown_webhook():
    with pytest.raises(CommandError, match="unknown webhook: clinic/nope"):
        run("change_webhook", "clinic/nope", "--ordering", "record")


def test_change_webhook_header_replaces_the_headers_keeps_a_value_left_blank_and_empty_removes_them():
    environment = make_environment("clinic")
    webhook = make_webhook(environment, URL, name="EHR", extra_headers={"Authorization": "Bearer s3", "X-Team": "ops"})

    run("change_webhook", "clinic/EHR", "--header", "Authorization:", "--header", "X-Site: north")
    webhook.refresh_from_db()
    assert webhook.extra_headers == {"Authorization": "Bearer s3", "X-Site": "north"}

    run("change_webhook", "clinic/EHR", "--header", "")
    webhook.refresh_from_db()
    assert webhook.extra_headers == {}
