"""Webhook commands: --json for scripts, one clear line and exit 1 on bad input, the same services as the portal."""

import datetime
import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook

from conftest import BASE_DIR, manage_py, subprocess_env
from credentials.tests.factories import make_client, make_credential
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import make_environment
from environments.workers import report_in
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_webhook_prints_its_secret_once_and_a_test_delivery_verifies_with_it(celery_worker_process):
    make_environment("clinic")
    with Receiver() as receiver:
        created = json.loads(
            run(
                "create_webhook",
                "--environment", "clinic", "--name", "EHR", "--url", receiver.url,
                "--events", "patients.created,patients.deleted", "--header", "X-Team: ops", "--json",
            )
        )  # fmt: skip
        assert created["signing_secret"].startswith("whsec_")
        assert created["event_types"] == ["patients.created", "patients.deleted"]

        result = json.loads(run("send_test_webhook", "clinic/EHR", "--json"))
    assert result["received"] is True and result["status_code"] == 200
    [request] = receiver.requests
    assert StandardWebhook(created["signing_secret"]).verify(request.body, request.headers)["type"] == "webhook.test"
    assert request.headers["X-Team"] == "ops"


def test_a_failed_test_delivery_exits_non_zero_with_one_line(celery_worker_process):
    environment = make_environment("clinic")
    with Receiver() as receiver:
        receiver.answer(503)
        webhook = make_webhook(environment, receiver.url)
        with pytest.raises(CommandError, match="was not received .answered 503"):
            run("send_test_webhook", str(webhook.pk))


def test_bad_input_is_one_readable_line_and_exit_1(transactional_db):
    make_environment("clinic")
    completed = subprocess.run(
        [sys.executable, "manage.py", "create_webhook", "--environment", "clinic", "--name", "X",
         "--url", "http://169.254.169.254/", "--events", "patients.created"],
        cwd=BASE_DIR, env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "169.254.169.254" in lines[0] and "link-local" in lines[0]
    assert "Traceback" not in completed.stderr
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send_test_webhook", "nope"], "give a webhook as its id"),
        (["send_test_webhook", "999"], "unknown webhook"),
        (["resend_deliveries", "--webhook", "999"], "unknown webhook"),
        (["prune_deliveries", "--older-than", "ninety"], "must look like 90d"),
        (["integration_health", "--environment", "nowhere"], "unknown environment"),
        (["credential_rotation", "itc_missing"], "unknown client_id"),
        (["retry_webhook", "999"], "unknown webhook"),
    ],
)
def test_commands_name_what_is_wrong(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_resend_deliveries_resends_failed_ones_in_the_range_with_their_ids():
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        for _ in range(3):
            create_record(environment, "patients", PATIENT)
        old, *recent = Delivery.objects.order_by("id")
        Delivery.objects.update(status=Delivery.Status.FAILED, next_attempt_at=None, leased_until=None, lease_owner="")
        Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=3))
        since = (timezone.now() - datetime.timedelta(days=1)).isoformat()

        result = json.loads(run("resend_deliveries", "--webhook", str(webhook.pk), "--since", since, "--json"))

    assert result["total"] == 2 and result["done"] == 2 and result["received"] == 2
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(d.message_id for d in recent)
    assert Delivery.objects.get(pk=old.pk).status == Delivery.Status.FAILED


def test_prune_deliveries_deletes_old_finished_ones_and_keeps_waiting_ones():
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        for _ in range(3):
            create_record(environment, "patients", PATIENT)
        done, waiting, recent = Delivery.objects.order_by("id")
        attempt_delivery(done.pk)
        attempt_delivery(recent.pk)
    long_ago = timezone.now() - datetime.timedelta(days=91)
    Delivery.objects.filter(pk__in=[done.pk, waiting.pk]).update(created_at=long_ago)

    assert json.loads(run("prune_deliveries", "--json"))["deleted"] == 1
    assert set(Delivery.objects.values_list("pk", flat=True)) == {waiting.pk, recent.pk}
    assert webhook.pk


def test_integration_health_reports_counts_delays_and_state():
    environment = make_environment("clinic")
    report_in("worker-1")  # a worker runs: only the webhooks decide the exit code here
    with Receiver() as receiver:
        receiver.answer(500)
        webhook = make_webhook(environment, receiver.url, name="EHR")
        for _ in range(3):
            create_record(environment, "patients", PATIENT)
        for delivery in Delivery.objects.order_by("id"):
            attempt_delivery(delivery.pk)

    [row] = json.loads(run("integration_health", "--environment", "clinic", "--json"))
    assert row["webhook"] == "EHR" and row["state"] == "healthy"  # the last attempt succeeded
    assert (row["deliveries"], row["succeeded"], row["failed"], row["waiting"]) == (3, 2, 1, 1)
    assert row["p50_delay_ms"] is not None and row["p95_delay_ms"] >= row["p50_delay_ms"]
    assert "EHR" in run("integration_health")
    assert webhook.pk


def test_integration_health_exits_1_when_a_webhook_fails_longer_than_the_threshold_or_is_disabled():
    environment = make_environment("clinic")
    report_in("worker-1")  # a worker runs: only the webhooks decide the exit code here
    failing = make_webhook(environment, "http://127.0.0.1:9999/a", name="Failing")
    make_webhook(environment, "http://127.0.0.1:9999/b", name="Fine")
    Webhook.objects.filter(pk=failing.pk).update(failing_since=timezone.now() - datetime.timedelta(hours=2))

    with pytest.raises(SystemExit) as alert:
        run("integration_health", "--fail-after", "1h")
    assert alert.value.code == 1
    assert "Fine" in run("integration_health", "--fail-after", "3h")  # returns: exit 0

    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("integration_health", "--json", stdout=out)
    rows = {row["webhook"]: row for row in json.loads(out.getvalue())}
    assert rows["Failing"]["state"] == "failing" and rows["Failing"]["needs_attention"] is True
    assert rows["Failing"]["disables_at"] is not None
    assert rows["Fine"]["state"] == "healthy" and rows["Fine"]["needs_attention"] is False

    Webhook.objects.filter(pk=failing.pk).update(
        failing_since=None, state=Webhook.State.DISABLED, disabled_reason="410 Gone"
    )
    result = manage_py("integration_health", "--fail-after", "30d")
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == "1 webhook needs attention: clinic/Failing (disabled)"


def test_credential_rotation_walks_the_seven_steps(celery_worker_process):
    environment = make_environment("clinic")
    app = make_client(environment)
    old, _ = make_credential(app, name="Old")
    with Receiver() as receiver:
        webhook = make_webhook(
            environment, receiver.url, security_method="credentials", signing_credential_ids=[str(old.pk)]
        )
        steps = json.loads(run("credential_rotation", app.client_id, "--json"))
        assert [s["done"] for s in steps][:1] == [False]

        new, new_secret = make_credential(app, name="New")
        steps = json.loads(run("credential_rotation", app.client_id, "--json"))
        assert steps[0]["done"] and not steps[2]["done"] and steps[2]["action"] == "add-new-to-signing"
        with pytest.raises(CommandError, match="step 3"):
            run("credential_rotation", app.client_id, "--do", "retire-old")

        run("credential_rotation", app.client_id, "--do", "add-new-to-signing")
        assert set(webhook.signing_credentials.all()) == {old, new}
        run("credential_rotation", app.client_id, "--do", "retire-old")
        old.refresh_from_db()
        assert old.invalidated_at is not None and list(webhook.signing_credentials.all()) == [new]

        run("send_test_webhook", str(webhook.pk))
    [request] = receiver.requests
    assert StandardWebhook(new_secret.encode()).verify(request.body, request.headers)
    steps = json.loads(run("credential_rotation", app.client_id, "--json"))
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6, 7]
    # A received delivery proves nothing about the old key: the integrator confirms step 6.
    assert [s["done"] for s in steps] == [True, False, True, True, True, False, False]
    assert steps[5]["action"] == "confirm-receivers"
    run("credential_rotation", app.client_id, "--do", "confirm-receivers")
    steps = json.loads(run("credential_rotation", app.client_id, "--json"))
    assert [s["done"] for s in steps] == [True, False, True, True, True, True, False]
    assert AuditEvent.objects.filter(action="rotation.receivers_confirmed", target_id=str(app.pk)).exists()


def test_retry_webhook_sends_waiting_deliveries_now():
    environment = make_environment("clinic")
    with Receiver() as receiver:
        receiver.default.status = 503
        webhook = make_webhook(environment, receiver.url, name="EHR")
        create_record(environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        attempt_delivery(Delivery.objects.get(webhook=webhook).pk)
    output = json.loads(run("retry_webhook", "clinic/EHR", "--json"))
    assert output == {"webhook": webhook.pk, "deliveries": 1}
    assert Delivery.objects.get(webhook=webhook).next_attempt_at <= timezone.now()
