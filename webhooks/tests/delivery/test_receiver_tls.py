"""Mutual TLS and a receiver's own CA: real TLS receivers (Python's ssl) with certificates from trustme CAs."""

import contextlib
import datetime
import socket
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.db import connection

from conftest import free_port
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.delivery import authorization
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Attempt, Delivery, ReceiverAuth
from webhooks.receiver_auth import ReceiverAuthInvalid, new_client_csr, set_ca_bundle, set_client_certificate
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_caches():
    authorization._settings.clear()
    authorization._tokens.clear()


class TLSReceiver(Receiver):
    """A receiver over TLS with a certificate of `server_ca`; with `client_ca`, it requires a client
    certificate issued by that CA."""

    def __init__(self, server_ca: trustme.CA, client_ca: trustme.CA | str | None = None):
        super().__init__()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ca.issue_cert("127.0.0.1").configure_cert(context)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            if isinstance(client_ca, str):
                context.load_verify_locations(cadata=client_ca)
            else:
                client_ca.configure_trust(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.url = f"https://127.0.0.1:{self.server.server_port}/hooks"
        answer = self.server.finish_request

        def finish_request(request, client_address):
            # The handshake on the connection's own thread; one that fails is closed as a web server would: its
            # alert sent, then what the client already sent read away, so the client reads the alert (closing
            # with unread data would reset the connection and lose it).
            try:
                request.do_handshake()
            except OSError:
                with contextlib.suppress(OSError):
                    request.shutdown(socket.SHUT_WR)
                    request.settimeout(1)
                    while request.recv(4096):
                        pass
                return
            answer(request, client_address)

        self.server.finish_request = finish_request


def send_one(webhook) -> Attempt:
    create_record(webhook.environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
    return attempt_delivery(Delivery.objects.filter(webhook=webhook).latest("id").pk)


def client_certificate(ca: trustme.CA) -> tuple[str, str]:
    issued = ca.issue_cert("webhooks.portal.test")
    return issued.cert_chain_pems[0].bytes().decode(), issued.private_key_pem.bytes().decode()


def test_a_receiver_under_its_own_ca_is_trusted_through_the_webhook_ca_bundle_not_by_turning_checks_off():
    private_ca = trustme.CA()
    with TLSReceiver(private_ca) as receiver:
        webhook = make_webhook(make_environment(), receiver.url, event_types=["patients.created"])
        refused = send_one(webhook)
        set_ca_bundle(webhook, private_ca.cert_pem.bytes().decode())
        trusted = send_one(webhook)

    assert refused.error == "tls_error"
    assert trusted.succeeded and len(receiver.requests) == 1


def test_mutual_tls_presents_the_uploaded_certificate_and_a_refused_one_says_so():
    server_ca, client_ca, stranger_ca = trustme.CA(), trustme.CA(), trustme.CA()
    with TLSReceiver(server_ca, client_ca=client_ca) as receiver:
        webhook = make_webhook(make_environment(), receiver.url, event_types=["patients.created"])
        set_ca_bundle(webhook, server_ca.cert_pem.bytes().decode())
        without = send_one(webhook)
        set_client_certificate(webhook, *client_certificate(stranger_ca))
        strange = send_one(webhook)
        set_client_certificate(webhook, *client_certificate(client_ca))
        accepted = send_one(webhook)

    assert strange.error == "tls_client_cert_rejected"
    assert "refused the TLS client certificate (TLS alert unknown ca)" in strange.error_detail
    assert without.error == "tls_client_cert_rejected"
    assert "(TLS alert certificate required)" in without.error_detail
    assert accepted.succeeded and len(receiver.requests) == 1
    auth = ReceiverAuth.objects.get(webhook=webhook)
    assert auth.cert_subject and auth.cert_issuer and auth.cert_not_after
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_key FROM webhooks_receiverauth")
        [(column,)] = cursor.fetchall()
    assert "PRIVATE KEY" not in column, "the key is encrypted at rest"


def test_an_expired_certificate_is_refused_at_upload_and_one_that_expired_since_sends_nothing():
    client_ca = trustme.CA()
    expired = client_ca.issue_cert("old.portal.test", not_after=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    with Receiver() as receiver:
        webhook = make_webhook(make_environment(), receiver.url, event_types=["patients.created"])
        with pytest.raises(ReceiverAuthInvalid, match="expired"):
            set_client_certificate(
                webhook, expired.cert_chain_pems[0].bytes().decode(), expired.private_key_pem.bytes().decode()
            )
        set_client_certificate(webhook, *client_certificate(client_ca))
        ReceiverAuth.objects.filter(webhook=webhook).update(
            cert_not_after=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)
        )
        authorization._settings.clear()
        attempt = send_one(webhook)

    assert attempt.error == "tls_client_cert_rejected" and "expired on 2021-01-01" in attempt.error_detail
    assert receiver.requests == []


def test_a_key_that_is_not_the_certificates_is_refused():
    client_ca = trustme.CA()
    cert, _ = client_certificate(client_ca)
    _, other_key = client_certificate(client_ca)
    webhook = make_webhook(
        make_environment(), f"http://127.0.0.1:{free_port()}/hooks", event_types=["patients.created"]
    )
    with pytest.raises(ReceiverAuthInvalid, match="does not belong"):
        set_client_certificate(webhook, cert, other_key)


def a_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A receiver's own client CA, made with cryptography (trustme signs no CSR of ours)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EHR client CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, certificate


def signed(csr_pem: str, ca_key, ca_certificate) -> str:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_certificate.subject)
        .public_key(csr.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_a_key_made_here_with_its_csr_signed_by_the_receivers_ca_authenticates_and_never_leaves():
    server_ca = trustme.CA()
    ca_key, ca_certificate = a_ca()
    ca_pem = ca_certificate.public_bytes(serialization.Encoding.PEM).decode()
    with TLSReceiver(server_ca, client_ca=ca_pem) as receiver:
        webhook = make_webhook(make_environment(), receiver.url, event_types=["patients.created"])
        set_ca_bundle(webhook, server_ca.cert_pem.bytes().decode())
        csr = new_client_csr(webhook, "webhooks.portal.example.org")
        assert "PRIVATE KEY" not in csr
        set_client_certificate(webhook, signed(csr, ca_key, ca_certificate))
        attempt = send_one(webhook)

    assert attempt.succeeded and len(receiver.requests) == 1
    auth = ReceiverAuth.objects.get(webhook=webhook)
    assert auth.cert_subject == "CN=webhooks.portal.example.org" and auth.cert_issuer == "CN=EHR client CA"
    assert auth.pending_csr == "" and auth.pending_key == "" and auth.client_key
