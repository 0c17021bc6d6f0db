"""The signature self-test against real receivers: one that verifies, one that accepts anything, one that
re-serialises the body before verifying."""

import json

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from conftest import WORKER_TEST_ENV, manage_py
from environments.models import AuditEvent
from environments.tests.factories import log_in_director, make_environment
from environments.workers import report_in
from webhooks import self_test
from webhooks.models import Delivery, ManualSend
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def verifying(secret: str, *, reserialise: bool = False):
    def judge(body: bytes, headers: dict) -> Answer:
        if reserialise:  # a common mistake: verify what a JSON library writes back, not the bytes received
            body = json.dumps(json.loads(body)).encode()
        try:
            StandardWebhook(secret).verify(body, {name.lower(): value for name, value in headers.items()})
        except WebhookVerificationError:
            return Answer(status=401, body=b"bad signature")
        return Answer(status=204, body=b"")

    return judge


@pytest.fixture
def env():
    return make_environment("clinic")


def test_a_receiver_that_verifies_passes_and_both_requests_are_recorded_as_tests(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        receiver.judge = verifying(webhook.plain_secret)
        result = self_test.result_of(carried_out(self_test.run(webhook)))
    assert result.passed, result.verdict
    assert result.verdict == (
        "Passed: the receiver accepted the signed request (204) and refused the one altered after signing (401)."
    )
    assert Delivery.objects.filter(webhook=webhook, is_test=True, event_types="webhook.signature_test").count() == 2
    signed, altered = (request.body for request in receiver.requests)
    assert b"\\u00e9" in signed and b'"ratio":1.0' in signed  # bytes no JSON library writes back
    assert len(signed) == len(altered) and signed != altered
    webhook.refresh_from_db()
    assert webhook.condition == "healthy"  # the refused test is expected, not a failure of the webhook
    assert AuditEvent.objects.get(action="webhook.signature_self_test").details["passed"] is True


def test_a_receiver_that_accepts_anything_fails(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        result = self_test.result_of(carried_out(self_test.run(webhook)))
    assert not result.passed
    assert "it does not verify signatures, so anyone can post to it" in result.verdict


def test_a_receiver_that_re_serialises_before_verifying_fails(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        receiver.judge = verifying(webhook.plain_secret, reserialise=True)
        result = self_test.result_of(carried_out(self_test.run(webhook)))
    assert not result.passed
    assert "parse and re-serialise the body before verifying" in result.verdict


def test_the_page_says_it_is_sending_then_shows_the_verdict_under_the_self_test_button(env, client):
    report_in("worker-1")  # a worker runs; carried_out() below does its part here
    log_in_director(client, env)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        response = client.post(f"/e/clinic/webhooks/{webhook.pk}/self-test/")
        send = ManualSend.objects.get(kind="self_test")
        assert response.status_code == 302
        assert response["Location"] == f"/e/clinic/webhooks/{webhook.pk}/?self_test={send.pk}#testing"
        assert receiver.requests == []  # the web request sent nothing: a worker does
        waiting = client.get(response["Location"]).content.decode()
        carried_out(send)
        page = client.get(response["Location"]).content.decode()
    assert "Sending…" in waiting
    assert f'href="?self_test={send.pk}&amp;again=1#testing">Reload to see the result' in waiting
    assert "✗ failed" in page and "it does not verify signatures" in page
    assert "Sending…" not in page
    # The verdict sits under its own button, not under the test delivery's.
    assert page.index("Run the signature self-test") < page.index("✗ failed")
    assert len(receiver.requests) == 2  # showing the result sent nothing more


def test_the_command_waits_for_the_worker_and_exits_1_when_the_receiver_does_not_verify(env, celery_worker_process):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        done = manage_py("signature_self_test", str(webhook.pk), "--json", **WORKER_TEST_ENV)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["passed"] is False
    assert len(receiver.requests) == 2


def test_the_command_says_so_in_one_line_when_no_worker_runs_it_in_time(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        done = manage_py("signature_self_test", str(webhook.pk), "--wait", "1", **WORKER_TEST_ENV)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"CommandError: no background worker sent the signature self-test of {webhook.name} within 1 s: "
        "is the Celery worker running? It stays queued and is sent when one runs."
    ]
    assert ManualSend.objects.get(kind="self_test").finished_at is None  # still asked for, not forgotten


def test_the_self_test_is_audited_from_the_address_it_was_asked_from(env, client):
    director = log_in_director(client, env)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        client.post(f"/e/clinic/webhooks/{webhook.pk}/self-test/", REMOTE_ADDR="203.0.113.7")
        carried_out(ManualSend.objects.get(kind="self_test"))
    event = AuditEvent.objects.get(action="webhook.signature_self_test")
    assert event.ip == "203.0.113.7" and event.actor_label == director.get_username()
