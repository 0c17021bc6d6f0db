"""The signature self-test against real receivers: one that verifies, one that accepts anything, one that
re-serialises the body before verifying."""

import json

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from conftest import manage_py
from environments.models import AuditEvent
from environments.tests.factories import log_in_director, make_environment
from webhooks import self_test
from webhooks.models import Delivery
from webhooks.tests.factories import make_webhook
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
        result = self_test.run(webhook)
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
        result = self_test.run(webhook)
    assert not result.passed
    assert "it does not verify signatures, so anyone can post to it" in result.verdict


def test_a_receiver_that_re_serialises_before_verifying_fails(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        receiver.judge = verifying(webhook.plain_secret, reserialise=True)
        result = self_test.run(webhook)
    assert not result.passed
    assert "parse and re-serialise the body before verifying" in result.verdict


def test_the_page_shows_the_verdict_after_a_redirect(env, client):
    log_in_director(client, env)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        response = client.post(f"/e/clinic/webhooks/{webhook.pk}/self-test/")
        page = client.get(response["Location"]).content.decode()
    assert response.status_code == 302 and "self_test=" in response["Location"]
    assert "✗ failed" in page and "it does not verify signatures" in page
    assert len(receiver.requests) == 2  # showing the result sent nothing more


def test_the_command_exits_1_when_the_receiver_does_not_verify(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        done = manage_py(
            "signature_self_test",
            str(webhook.pk),
            "--json",
            WEBHOOK_ALLOW_HTTP="1",
            WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["passed"] is False
