"""create_webhook / change_webhook: receiver authentication from files, never a secret on the command line
or in the output, every change audited by name."""

import datetime
import json
from io import StringIO

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.core.management import call_command
from django.core.management.base import CommandError

from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.delivery import authorization
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Delivery, ReceiverAuth, Webhook
from webhooks.tests.authorization_server import AuthorizationServer
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "cmd-client-secret-91c2d4"


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture(autouse=True)
def fresh_caches():
    authorization._settings.clear()
    authorization._tokens.clear()


def create_args(url, *extra):
    return ["create_webhook", "--environment", "clinic", "--name", "EHR", "--url", url, "--events", "patients.created"]


def test_create_webhook_with_oauth_reads_the_secret_from_a_file_and_never_prints_it(tmp_path):
    make_environment("clinic")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET + "\n")
    with AuthorizationServer() as server, Receiver(judge=server.protects) as receiver:
        server.register("portal", secret=SECRET, auth_method="client_secret_post")
        output = run(
            *create_args(receiver.url), "--receiver-auth", "oauth2-secret", "--token-url", server.token_url,
            "--oauth-client-id", "portal", "--oauth-client-secret-file", str(secret_file),
            "--oauth-client-auth", "client_secret_post", "--oauth-scope", "system/Patient.write", "--json",
        )  # fmt: skip
        created = json.loads(output)
        webhook = Webhook.objects.get(pk=created["id"])
        create_record(webhook.environment, "patients", {"first_name": "Ada", "last_name": "L"})
        attempt = attempt_delivery(Delivery.objects.get(webhook=webhook).pk)

    assert created["receiver_auth"] == {
        "method": "oauth2-secret",
        "token_url": server.token_url,
        "client_id": "portal",
        "scope": "system/Patient.write",
        "client_auth": "client_secret_post",
    }
    assert attempt.succeeded and server.issued == 1
    [event] = AuditEvent.objects.filter(action="webhook.receiver_auth_changed")
    assert "client secret replaced" in event.details["changed"]
    assert SECRET not in output and SECRET not in json.dumps(list(AuditEvent.objects.values("details")))


def test_a_secret_is_never_taken_from_the_command_line():
    make_environment("clinic")
    with pytest.raises(CommandError, match="unrecognized arguments"):
        run(*create_args("http://127.0.0.1:8080/hooks"), "--oauth-client-secret", SECRET)


def test_settings_that_do_not_hold_create_no_webhook(tmp_path):
    make_environment("clinic")
    with pytest.raises(CommandError, match="oauth_client_id"):
        run(*create_args("http://127.0.0.1:8080/hooks"), "--receiver-auth", "oauth2-jwt", "--token-url",
            "http://127.0.0.1:8080/token")  # fmt: skip
    assert not Webhook.objects.exists()
    with pytest.raises(CommandError, match="--receiver-auth oauth2-secret or oauth2-jwt"):
        run(*create_args("http://127.0.0.1:8080/hooks"), "--token-url", "http://127.0.0.1:8080/token")
    with pytest.raises(CommandError, match="cannot read"):
        run(*create_args("http://127.0.0.1:8080/hooks"), "--receiver-auth", "oauth2-secret", "--token-url",
            "http://127.0.0.1:8080/token", "--oauth-client-id", "x", "--oauth-client-secret-file",
            str(tmp_path / "missing"))  # fmt: skip
    assert not Webhook.objects.exists()


def test_change_webhook_to_private_key_jwt_shows_the_public_key_and_rotates_it():
    make_environment("clinic")
    run(*create_args("http://127.0.0.1:8080/hooks"))
    changed = json.loads(
        run("change_webhook", "clinic/EHR", "--receiver-auth", "oauth2-jwt", "--token-url",
            "http://127.0.0.1:8080/token", "--oauth-client-id", "smart", "--oauth-key-algorithm", "ES384", "--json")
    )  # fmt: skip
    auth = changed["receiver_auth"]
    assert auth["method"] == "oauth2-jwt" and auth["key_algorithm"] == "ES384"
    assert auth["public_jwk"]["kid"] == auth["kid"] and "d" not in auth["public_jwk"]
    rotated = json.loads(run("change_webhook", "clinic/EHR", "--rotate-oauth-key", "--json"))
    assert rotated["receiver_auth"]["kid"] != auth["kid"]
    stored = ReceiverAuth.objects.get()
    assert stored.private_key.split("\n")[1][:20] not in json.dumps([changed, rotated])
    actions = list(AuditEvent.objects.filter(action__startswith="webhook.receiver").values_list("action", flat=True))
    assert sorted(actions) == ["webhook.receiver_auth_changed", "webhook.receiver_key_rotated"]


def test_client_certificate_and_ca_bundle_come_from_files_and_show_only_their_public_facts(tmp_path):
    make_environment("clinic")
    ca = trustme.CA()
    issued = ca.issue_cert("webhooks.portal.test")
    (tmp_path / "cert.pem").write_bytes(issued.cert_chain_pems[0].bytes())
    (tmp_path / "key.pem").write_bytes(issued.private_key_pem.bytes())
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    run(*create_args("http://127.0.0.1:8080/hooks"))

    output = run("change_webhook", "clinic/EHR", "--client-cert", str(tmp_path / "cert.pem"), "--client-key",
                 str(tmp_path / "key.pem"), "--ca-bundle", str(tmp_path / "ca.pem"), "--json")  # fmt: skip
    described = json.loads(output)["receiver_auth"]
    assert described["client_certificate"]["not_after"] and described["ca_bundle_certificates"] == 1
    assert "PRIVATE KEY" not in output
    with pytest.raises(CommandError, match="upload the certificate's key, or generate a key and CSR first"):
        run("change_webhook", "clinic/EHR", "--client-cert", str(tmp_path / "cert.pem"))
    removed = json.loads(run("change_webhook", "clinic/EHR", "--remove-client-cert", "--ca-bundle", "", "--json"))
    assert removed["receiver_auth"] == {"method": "none"}
    changes = [
        event.details["changed"]
        for event in AuditEvent.objects.filter(action="webhook.receiver_tls_changed").order_by("id")
    ]
    assert changes == [["client certificate added"], ["CA bundle set (1 certificates)"],
                       ["client certificate removed"], ["CA bundle removed"]]  # fmt: skip


def test_change_webhook_makes_a_key_and_prints_its_csr_then_takes_the_certificate_alone(tmp_path):
    make_environment("clinic")
    run(*create_args("http://127.0.0.1:8080/hooks"))
    output = run("change_webhook", "clinic/EHR", "--new-client-csr", "webhooks.portal.example.org")
    assert "-----BEGIN CERTIFICATE REQUEST-----" in output and "PRIVATE KEY" not in output
    csr = x509.load_pem_x509_csr(ReceiverAuth.objects.get().pending_csr.encode())
    ca = trustme.CA()
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer.subject).public_key(csr.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=5))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "issued.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    described = json.loads(run("change_webhook", "clinic/EHR", "--client-cert", str(tmp_path / "issued.pem"), "--json"))
    assert described["receiver_auth"]["client_certificate"]["subject"] == "CN=webhooks.portal.example.org"
    assert "client_csr" not in described["receiver_auth"]
