"""Signatures per Standard Webhooks: receivers verify with the standardwebhooks library and what the portal showed."""

import base64
import datetime

import pytest
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from credentials.services import invalidate_credential
from credentials.tests.factories import make_client, make_credential
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks import signing
from webhooks.configure import WebhookInvalid, rotate_signing_secret, set_signing_credentials
from webhooks.manual import send_test
from webhooks.models import Delivery
from webhooks.sending import attempt_delivery
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def test_our_signature_is_the_one_the_reference_library_computes():
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    moment = datetime.datetime.fromtimestamp(1700000000, datetime.UTC)
    ours = signing.signature_header([key], "msg_1", 1700000000, '{"a":1}')
    assert ours == StandardWebhook(secret).sign("msg_1", moment, '{"a":1}')
    assert signing.key_of_signing_secret(secret) == key


def test_during_the_grace_period_both_secrets_sign_and_a_receiver_holding_either_verifies():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
        old_secret = webhook.plain_secret
        new_secret = rotate_signing_secret(webhook, grace=datetime.timedelta(hours=24))
        carried_out(send_test(webhook))
        [request] = receiver.requests

        assert len(request.headers["webhook-signature"].split(" ")) == 2
        assert StandardWebhook(old_secret).verify(request.body, request.headers)
        assert StandardWebhook(new_secret).verify(request.body, request.headers)

        # After the grace period only the new secret signs.
        create_record(environment, "patients", {"first_name": "A", "last_name": "B"})
        delivery = Delivery.objects.get(webhook=webhook, is_test=False)
        attempt_delivery(delivery.pk, now=timezone.now() + datetime.timedelta(hours=25))
    after = receiver.requests[1].headers["webhook-signature"]
    assert len(after.split(" ")) == 1
    timestamp = int(receiver.requests[1].headers["webhook-timestamp"])
    expected = signing.signature(
        signing.key_of_signing_secret(new_secret), delivery.message_id, timestamp, receiver.requests[1].text
    )
    assert after == expected
    assert AuditEvent.objects.filter(action="webhook.key_rotated").exists()


def test_a_grace_period_beyond_seven_days_is_refused():
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
    from webhooks.configure import WebhookError

    with pytest.raises(WebhookError, match="between 0 and 7 days"):
        rotate_signing_secret(webhook, grace=datetime.timedelta(days=8))


def test_credential_signing_verifies_with_the_client_secret_as_the_readme_says():
    environment = make_environment()
    app = make_client(environment)
    credential, client_secret = make_credential(app)
    with Receiver() as receiver:
        webhook = make_webhook(
            environment, receiver.url, security_method="credentials", signing_credential_ids=[str(credential.pk)]
        )
        carried_out(send_test(webhook))
    [request] = receiver.requests
    # The README: Webhook(client_secret.encode()), or "whsec_" + base64(client_secret) where only strings go.
    assert StandardWebhook(client_secret.encode()).verify(request.body, request.headers)
    as_whsec = "whsec_" + base64.b64encode(client_secret.encode()).decode()
    assert StandardWebhook(as_whsec).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(b"some other key").verify(request.body, request.headers)


def test_only_active_credentials_can_be_selected_and_one_in_use_cannot_be_invalidated():
    environment = make_environment()
    app = make_client(environment)
    in_use, _ = make_credential(app, name="In use")
    spare, _ = make_credential(app, name="Spare")
    invalidate_credential(spare)
    with Receiver() as receiver:
        webhook = make_webhook(
            environment, receiver.url, security_method="credentials", signing_credential_ids=[str(in_use.pk)]
        )
    with pytest.raises(WebhookInvalid, match="only active credentials"):
        set_signing_credentials(webhook, [str(spare.pk)])

    from credentials.services import CredentialInUse

    with pytest.raises(CredentialInUse, match=webhook.name):
        invalidate_credential(in_use)
