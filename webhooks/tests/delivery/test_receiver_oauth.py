"""Receivers that demand an OAuth 2.0 bearer token (client credentials with a client secret), in-process.

The authorization server is Authlib's (webhooks/tests/authorization_server.py), on 127.0.0.1; the
receiver accepts only its live tokens. Workers share the token the same way (test_receiver_oauth_workers.py).
"""

import io
import json
import logging
import time

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from conftest import free_port
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.delivery import authorization
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Attempt, Delivery, ReceiverAuth, ReceiverToken, Webhook
from webhooks.receiver_auth import ReceiverAuthFields, ReceiverAuthInvalid, set_receiver_auth
from webhooks.tests.authorization_server import AuthorizationServer
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "client-secret-3f9a7c1e0b"
PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


@pytest.fixture(autouse=True)
def fresh_caches():
    """Each test starts as a new worker would: nothing cached in this process."""
    authorization._settings.clear()
    authorization._tokens.clear()


@pytest.fixture
def server():
    with AuthorizationServer() as started:
        started.register("portal-webhooks", secret=SECRET, auth_method="client_secret_basic")
        yield started


@pytest.fixture
def receiver(server):
    with Receiver(judge=server.protects) as started:
        yield started


def oauth_webhook(server, receiver, *, secret_method="client_secret_basic", **options):
    webhook = make_webhook(make_environment(), receiver.url, event_types=["patients.created"], **options)
    server.state.clients["portal-webhooks"].auth_method = secret_method
    fields = ReceiverAuthFields(
        method="oauth2-secret",
        token_url=server.token_url,
        client_id="portal-webhooks",
        client_secret=SECRET,
        secret_method=secret_method,
        scope="system/Patient.write",
        resource="https://ehr.example.org/fhir",
    )
    set_receiver_auth(webhook, fields)
    return webhook


def send_one(webhook) -> Attempt:
    create_record(webhook.environment, "patients", PATIENT)
    return attempt_delivery(Delivery.objects.filter(webhook=webhook).latest("id").pk)


@pytest.mark.parametrize("secret_method", ["client_secret_basic", "client_secret_post"])
def test_the_token_is_fetched_before_the_first_request_and_reused_until_it_expires(server, receiver, secret_method):
    webhook = oauth_webhook(server, receiver, secret_method=secret_method)

    attempts = [send_one(webhook) for _ in range(3)]

    assert [attempt.status_code for attempt in attempts] == [200, 200, 200]
    assert server.issued == 1, "one token for three deliveries"
    assert all(server.is_live(request.headers["Authorization"]) for request in receiver.requests)
    assert {attempt.request_headers["Authorization"] for attempt in attempts} == {"[token]"}
    assert ReceiverToken.objects.get(webhook=webhook).fetches == 1
    assert server.state.requested == [{"scope": "system/Patient.write", "resource": "https://ehr.example.org/fhir"}]


def test_a_token_is_fetched_again_shortly_before_it_expires(server, receiver):
    server.state.expires_in = 2
    webhook = oauth_webhook(server, receiver)
    send_one(webhook)
    time.sleep(2)

    assert send_one(webhook).succeeded
    assert server.issued == 2
    assert len(receiver.requests) == 2, "the old token was not tried first: it was renewed before it expired"


def test_a_401_from_the_receiver_fetches_a_new_token_once_and_sends_again_in_the_same_attempt(server, receiver):
    webhook = oauth_webhook(server, receiver)
    send_one(webhook)
    server.revoke_all()  # the receiver no longer accepts the token we hold

    attempt = send_one(webhook)

    assert attempt.succeeded and attempt.number == 1
    assert server.issued == 2
    assert [request.headers["Authorization"] == receiver.requests[0].headers["Authorization"]
            for request in receiver.requests] == [True, True, False]  # fmt: skip


def test_a_receiver_that_refuses_even_a_fresh_token_is_an_auth_failure_after_one_new_token(server):
    with Receiver() as refusing:
        refusing.default.status = 401
        webhook = oauth_webhook(server, refusing)
        attempt = send_one(webhook)

    assert attempt.status_code == 401 and attempt.error == "auth_failed"
    assert "answered 401 to a fresh access token" in attempt.error_detail
    assert server.issued == 2 and len(refusing.requests) == 2


def break_token_endpoint(server, webhook, case):
    if case == "wrong secret":
        server.state.clients["portal-webhooks"].secret = "another secret"
    elif case == "error":
        server.state.broken = (503, b'{"error": "temporarily_unavailable"}')
    elif case == "nonsense":
        server.state.broken = (200, b"<html>Sign in</html>")
    elif case == "down":
        ReceiverAuth.objects.filter(webhook=webhook).update(token_url=f"http://127.0.0.1:{free_port()}/token")
    elif case == "slow":
        server.state.delay = 3
    elif case == "blocked address":
        # What DNS rebinding would do: the token URL now leads somewhere webhooks may not go.
        ReceiverAuth.objects.filter(webhook=webhook).update(token_url="http://10.0.0.1/token")


@pytest.mark.parametrize(
    ("case", "error", "detail"),
    [
        ("wrong secret", "auth_failed", "refused our client credentials (invalid_client"),
        ("error", "token_endpoint_error", "answered HTTP 503, not a token"),
        ("nonsense", "token_endpoint_error", "answered 200 without a bearer access token"),
        ("down", "token_endpoint_error", "could not be used (connection_refused"),
        ("slow", "token_endpoint_error", "could not be used (timeout"),
        ("blocked address", "token_endpoint_error", "could not be used (blocked_address: 10.0.0.1"),
    ],
)
def test_a_token_endpoint_that_fails_is_an_attempt_with_its_own_error_class_counted_in_health(
    server, receiver, case, error, detail
):
    webhook = oauth_webhook(server, receiver, timeout_seconds=1)
    break_token_endpoint(server, webhook, case)

    started = time.monotonic()
    attempt = send_one(webhook)

    assert attempt.error == error and attempt.status_code is None and not attempt.succeeded
    assert detail in attempt.error_detail
    assert receiver.requests == [], "nothing is sent without a token"
    assert time.monotonic() - started < 2.5, "the token request counts inside the attempt's timeout"
    assert Webhook.objects.get(pk=webhook.pk).failing_since is not None
    assert Delivery.objects.get(pk=attempt.delivery_id).status == Delivery.Status.RETRYING


def test_no_token_or_secret_is_in_the_history_the_audit_trail_the_logs_or_the_database_column(server, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    webhook = oauth_webhook(server, receiver)
    send_one(webhook)
    server.revoke_all()
    send_one(webhook)
    server.state.clients["portal-webhooks"].secret = "changed"
    server.revoke_all()
    send_one(webhook)

    secrets = [SECRET, *server.state.every_token]
    assert len(secrets) == 3
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret FROM webhooks_receiverauth")
        stored = cursor.fetchall()
        cursor.execute("SELECT token FROM webhooks_receivertoken")
        stored += cursor.fetchall()
    places = {
        "history": [str(row) for row in Attempt.objects.values()],
        "deliveries": [str(row) for row in Delivery.objects.values()],
        "audit": [str(row) for row in AuditEvent.objects.values()],
        # Everything logged in this process but by the authorization server, which is the receiver's, not ours.
        "logs": [record.getMessage() for record in caplog.records if not record.name.startswith("authlib")],
        "columns": [str(stored)],
    }
    for place, texts in places.items():
        for secret in secrets:
            assert not any(secret in text for text in texts), f"a secret or token in the {place}"
    assert AuditEvent.objects.filter(action="webhook.receiver_auth_changed").exists()


def test_rotating_encryption_keys_reencrypts_the_client_secret_and_the_shared_token(server, receiver, settings):
    webhook = oauth_webhook(server, receiver)
    send_one(webhook)
    new_key = Fernet.generate_key().decode()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, *settings.FIELD_ENCRYPTION_KEYS]):
        report = json.loads(call_command_output("rotate_encryption_keys", "--json"))
    assert report["receiver_oauth_clients"] == 1 and report["receiver_bearers"] == 1

    authorization._settings.clear()
    authorization._tokens.clear()
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert send_one(webhook).succeeded
    assert server.issued == 1, "the shared token decrypts under the new key: no new fetch"


def call_command_output(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_settings_that_do_not_hold_are_refused_with_every_reason():
    webhook = make_webhook(make_environment(), f"http://127.0.0.1:{free_port()}/hooks")
    with pytest.raises(ReceiverAuthInvalid) as refused:
        set_receiver_auth(webhook, ReceiverAuthFields(method="oauth2-secret", token_url="ftp://x/token"))
    assert set(refused.value.errors) == {"token_url", "oauth_client_id", "oauth_client_secret"}
    assert not ReceiverAuth.objects.exists()
