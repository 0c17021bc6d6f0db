"""The webhook page's receiver authentication: set through the portal, shown by its public halves only,
and "Send test" proves the whole chain with the same authentication."""

import pytest
import trustme
from django.core.files.uploadedfile import SimpleUploadedFile

from environments.models import AuditEvent
from webhooks import manual
from webhooks.delivery import authorization
from webhooks.models import ReceiverAuth
from webhooks.tests.authorization_server import AuthorizationServer
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "page-client-secret-77ab01"


@pytest.fixture(autouse=True)
def fresh_caches():
    authorization._settings.clear()
    authorization._tokens.clear()


def page_of(webhook) -> str:
    return f"/e/{webhook.environment.slug}/webhooks/{webhook.pk}/"


def test_a_director_sets_oauth_on_the_page_and_send_test_proves_it_without_showing_the_secret(client, env, director):
    with AuthorizationServer() as server, Receiver(judge=server.protects) as receiver:
        server.register("portal", secret=SECRET)
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"])
        response = client.post(
            page_of(webhook) + "receiver-auth/",
            {
                "method": "oauth2-secret", "token_url": server.token_url, "client_id": "portal",
                "client_secret": SECRET, "secret_method": "client_secret_basic", "scope": "system/*.write",
            },
        )  # fmt: skip
        assert response.status_code == 302, response.content.decode()[:2000]
        send = carried_out(manual.send_test(webhook))
        assert send.attempt.succeeded and send.attempt.request_headers["Authorization"] == "[token]"
        assert server.issued == 1

    detail = client.get(page_of(webhook)).content.decode()
    form = client.get(page_of(webhook) + "receiver-auth/").content.decode()
    assert "Receiver authentication: oauth 2.0 client credentials with a client secret" in detail
    assert server.token_url in detail
    assert SECRET not in detail and SECRET not in form
    [event] = AuditEvent.objects.filter(action="webhook.receiver_auth_changed")
    assert event.actor_label == "director" and "client secret replaced" in event.details["changed"]


def test_private_key_jwt_shows_the_public_key_and_its_kid_on_the_page(client, env, director):
    webhook = make_webhook(env, "http://127.0.0.1:8080/hooks", event_types=["patients.created"])
    client.post(
        page_of(webhook) + "receiver-auth/",
        {"method": "oauth2-jwt", "token_url": "http://127.0.0.1:8080/token", "client_id": "smart",
         "key_algorithm": "ES384"},
    )  # fmt: skip
    auth = ReceiverAuth.objects.get(webhook=webhook)
    detail = client.get(page_of(webhook)).content.decode()
    assert auth.kid in detail and auth.public_jwk["x"] in detail
    assert "PRIVATE KEY" not in detail


def test_a_certificate_and_ca_bundle_are_uploaded_and_the_certificate_is_described(client, env, director):
    ca = trustme.CA()
    issued = ca.issue_cert("webhooks.portal.test")
    webhook = make_webhook(env, "http://127.0.0.1:8080/hooks", event_types=["patients.created"])
    response = client.post(
        page_of(webhook) + "receiver-auth/",
        {
            "method": "none",
            "client_cert": SimpleUploadedFile("cert.pem", issued.cert_chain_pems[0].bytes()),
            "client_key": SimpleUploadedFile("key.pem", issued.private_key_pem.bytes()),
            "ca_bundle": SimpleUploadedFile("ca.pem", ca.cert_pem.bytes()),
        },
    )
    assert response.status_code == 302
    detail = client.get(page_of(webhook)).content.decode()
    auth = ReceiverAuth.objects.get(webhook=webhook)
    assert auth.cert_issuer in detail and "added to the system roots" in detail
    assert "PRIVATE KEY" not in detail


def test_settings_that_do_not_hold_are_shown_on_the_form(client, env, director):
    webhook = make_webhook(env, "http://127.0.0.1:8080/hooks", event_types=["patients.created"])
    response = client.post(page_of(webhook) + "receiver-auth/", {"method": "oauth2-secret", "token_url": "x"})
    assert response.status_code == 200
    assert "the client id the receiver registered for us is needed" in response.content.decode()
    assert not ReceiverAuth.objects.exists()


def test_a_key_and_csr_made_on_the_page_show_the_csr_and_never_the_key(client, env, director):
    webhook = make_webhook(env, "http://127.0.0.1:8080/hooks", event_types=["patients.created"])
    response = client.post(
        page_of(webhook) + "receiver-auth/", {"method": "none", "new_csr_common_name": "webhooks.portal.test"}
    )
    assert response.status_code == 302
    detail = client.get(page_of(webhook)).content.decode()
    assert "-----BEGIN CERTIFICATE REQUEST-----" in detail and "PRIVATE KEY" not in detail
    [event] = AuditEvent.objects.filter(action="webhook.receiver_tls_changed")
    assert event.details["changed"] == ["key and certificate signing request generated"]
