"""Signatures per Standard Webhooks: receivers verify with the standardwebhooks library and what the portal showed."""

import base64
import datetime
import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from credentials.services import invalidate_credential
from credentials.tests.factories import make_client, make_credential
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.bad_input import assert_command_refused
from environments.tests.browser import log_in
from environments.tests.factories import grant, log_in_director, make_environment, make_user
from webhooks.configure import WebhookInvalid, rotate_signing_secret, set_signing_credentials, signing_secrets_in_use
from webhooks.delivery import signing
from webhooks.delivery.sending import attempt_delivery
from webhooks.manual import send_test
from webhooks.models import Delivery
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


def sent_signatures(receiver, environment, webhook) -> tuple[str, object]:
    """Write a record, send its delivery now, and return the webhook-signature header the receiver got."""
    create_record(environment, "patients", {"first_name": "A", "last_name": "B"})
    delivery = Delivery.objects.filter(webhook=webhook, is_test=False).order_by("-id").first()
    attempt_delivery(delivery.pk)
    request = receiver.requests[-1]
    return request.headers["webhook-signature"], request


def test_stop_signing_with_the_old_secret_now_leaves_only_the_new_signature(client):
    environment = make_environment("clinic")
    director = log_in_director(client, environment)
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, name="EHR")
        old_secret = webhook.plain_secret
        new_secret = rotate_signing_secret(webhook, grace=datetime.timedelta(hours=24))
        during, _ = sent_signatures(receiver, environment, webhook)
        assert len(during.split(" ")) == 2  # the grace period: both sign

        detail = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
        assert "Stop signing with the old secret now…" in detail
        confirm = client.get(f"/e/clinic/webhooks/{webhook.pk}/stop-old-keys/").content.decode()
        assert "will refuse every request" in confirm and "Stop signing with the old secret now</button>" in confirm
        done = client.post(f"/e/clinic/webhooks/{webhook.pk}/stop-old-keys/", follow=True).content.decode()
        assert "1 old secret stopped signing" in done
        assert "Stop signing with the old secret now…" not in done

        after, request = sent_signatures(receiver, environment, webhook)
    assert len(after.split(" ")) == 1
    assert StandardWebhook(new_secret).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old_secret).verify(request.body, request.headers)
    event = AuditEvent.objects.get(action="webhook.old_keys_stopped")
    assert event.actor_label == director.username and event.details["stopped"] == 1
    assert event.target_label == "EHR"


def test_a_viewer_cannot_stop_the_old_secret():
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
    rotate_signing_secret(webhook, grace=datetime.timedelta(hours=24))
    viewer = make_user("viewer")
    grant(viewer, environment, "viewer")
    browser = Client()
    browser.force_login(viewer)
    assert "Stop signing with the old" not in browser.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert browser.post(f"/e/clinic/webhooks/{webhook.pk}/stop-old-keys/").status_code == 403
    assert len(signing_secrets_in_use(webhook)) == 2


def test_the_command_stops_the_old_key_pair_now_and_says_so():
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, name="EHR", security_method="ed25519")
        rotate_signing_secret(webhook, grace=datetime.timedelta(hours=24))
        assert len(sent_signatures(receiver, environment, webhook)[0].split(" ")) == 2

        out = io.StringIO()
        call_command("webhook_signing_keys", "clinic/EHR", "--stop-old-now", stdout=out)
        assert out.getvalue().startswith("EHR: 1 old key stopped signing now.")
        after, _ = sent_signatures(receiver, environment, webhook)
    assert len(after.split(" ")) == 1 and after.startswith("v1a,")
    assert AuditEvent.objects.get(action="webhook.old_keys_stopped").actor_label == "manage.py webhook_signing_keys"
    assert_command_refused("webhook_signing_keys", "clinic/EHR", "--stop-old-now", says="there is nothing to stop")


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1440])
def test_stopping_the_old_secret_works_with_a_keyboard_at_a_phones_and_a_desktops_width(page, width):
    environment = make_environment("ward")
    grant(make_user("dana"), environment)
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, name="Lab results bridge")
    rotate_signing_secret(webhook, grace=datetime.timedelta(hours=24))

    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto(f"/e/ward/webhooks/{webhook.pk}/")
    page.get_by_role("link", name="Stop signing with the old secret now…").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/webhooks/{webhook.pk}/stop-old-keys/")
    assert "will refuse every request" in page.get_by_role("alert").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.get_by_role("button", name="Stop signing with the old secret now").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/webhooks/{webhook.pk}/#signing")
    assert "1 old secret stopped signing" in page.content()
    assert page.get_by_role("link", name="Stop signing with the old secret now…").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert len(signing_secrets_in_use(webhook)) == 1
    assert not page.console_errors
