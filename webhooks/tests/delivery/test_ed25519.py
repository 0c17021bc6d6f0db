"""Asymmetric signatures: Ed25519 `v1a` per Standard Webhooks, verified with an independent implementation
(libsodium through PyNaCl, not the `cryptography` package that signs), keys published as a JWKS."""

import base64
import datetime
import json
from io import StringIO

import pytest
from django.core.management import call_command
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from environments.records import create_record
from environments.tests.factories import log_in_director, make_environment
from webhooks import self_test
from webhooks.configure import fields_of, rotate_signing_secret, signing_secrets_in_use, update_webhook
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import SigningSecret
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def v1a_signatures(headers: dict) -> list[bytes]:
    return [
        base64.b64decode(part.removeprefix("v1a,"))
        for part in headers["webhook-signature"].split()
        if part.startswith("v1a,")
    ]


def verifies(public_key: str, headers: dict, body: bytes) -> bool:
    """The receiver's check, with libsodium: any v1a signature made by this public key over id.timestamp.body."""
    key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for signature in v1a_signatures(headers):
        try:
            key.verify(signed, signature)
            return True
        except BadSignatureError:
            continue
    return False


@pytest.fixture
def env():
    return make_environment("clinic")


def deliver_one(webhook):
    create_record(webhook.environment, "patients", ADA)
    attempt_delivery(webhook.deliveries.order_by("-id").first().pk)


def test_requests_carry_v1a_signatures_that_libsodium_verifies_and_tampering_breaks(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, security_method="ed25519")
        deliver_one(webhook)
    [public_key] = [key.public_key for key in signing_secrets_in_use(webhook)]
    assert public_key.startswith("whpk_") and len(base64.b64decode(public_key[5:])) == 32
    [request] = receiver.requests
    assert request.headers["webhook-signature"].startswith("v1a,")
    assert verifies(public_key, request.headers, request.body)
    assert not verifies(public_key, request.headers, request.body.replace(b"Ada", b"Eve"))
    other_webhook = make_webhook(env, receiver.url, security_method="ed25519")
    assert not verifies(signing_secrets_in_use(other_webhook)[0].public_key, request.headers, request.body)


def test_rotation_overlaps_and_the_jwks_lists_every_key_that_signs(env, client):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, security_method="ed25519", name="EHR bridge")
        make_webhook(env, receiver.url, name="HMAC one")  # its pair is not in use: not published
        old = signing_secrets_in_use(webhook)[0].public_key
        new = rotate_signing_secret(webhook, grace=datetime.timedelta(hours=24))
        deliver_one(webhook)
    [request] = receiver.requests
    assert len(v1a_signatures(request.headers)) == 2
    assert verifies(old, request.headers, request.body) and verifies(new, request.headers, request.body)

    jwks = client.get("/e/clinic/webhooks/jwks.json").json()
    assert [key["webhook_public_key"] for key in jwks["keys"]] == [new, old]
    for key in jwks["keys"]:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        assert "whpk_" + base64.b64encode(raw).decode() == key["webhook_public_key"]
        assert key["kid"].startswith("whpk-")
    assert "expires_at" in jwks["keys"][1] and "expires_at" not in jwks["keys"][0]
    assert client.get("/e/no-such-place/webhooks/jwks.json").json() == {"keys": []}


def test_the_public_jwks_names_keys_never_webhooks(env, client):
    with Receiver() as receiver:
        lab = make_webhook(env, receiver.url, security_method="ed25519", name="St Mary oncology lab")
        make_webhook(env, receiver.url, security_method="ed25519", name="Acme billing bridge")
        rotate_signing_secret(lab, grace=datetime.timedelta(hours=24))

    response = client.get("/e/clinic/webhooks/jwks.json")
    document = response.content.decode()
    assert "St Mary" not in document and "oncology" not in document and "Acme" not in document
    keys = response.json()["keys"]
    assert len(keys) == 3
    assert all(set(key) <= {"kty", "crv", "x", "kid", "use", "alg", "webhook_public_key", "expires_at"} for key in keys)
    # Each kid is the key's own: opaque, stable, and the one the webhook's page shows beside the key.
    in_use = {pair.public_key: pair.kid for pair in signing_secrets_in_use(lab)}
    assert {key["webhook_public_key"]: key["kid"] for key in keys if key["webhook_public_key"] in in_use} == in_use
    assert len({key["kid"] for key in keys}) == 3
    assert client.get("/e/clinic/webhooks/jwks.json").json() == response.json()
    log_in_director(client, env)
    page = client.get(f"/e/clinic/webhooks/{lab.pk}/").content.decode()
    assert all(kid in page for kid in in_use.values())


def test_switching_to_ed25519_makes_a_pair_when_the_webhook_has_none(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
    SigningSecret.objects.filter(webhook=webhook, algorithm="ed25519").delete()  # as made before pairs existed
    fields = fields_of(webhook)
    fields.security_method = "ed25519"
    update_webhook(webhook, fields)
    assert len(signing_secrets_in_use(webhook)) == 1


def test_the_self_test_passes_against_a_receiver_that_verifies_with_the_public_key(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, security_method="ed25519")
        public_key = signing_secrets_in_use(webhook)[0].public_key
        receiver.judge = lambda body, headers: Answer(
            status=204 if verifies(public_key, {k.lower(): v for k, v in headers.items()}, body) else 401
        )
        result = self_test.result_of(carried_out(self_test.run(webhook)))
    assert result.passed, result.verdict


def test_the_page_and_the_command_show_the_public_key_never_the_private_one(env, client):
    log_in_director(client, env)
    with Receiver() as receiver:
        out = StringIO()
        call_command(
            "create_webhook",
            "--environment=clinic",
            "--name=Lab",
            f"--url={receiver.url}",
            "--events=patients.created",
            "--security=ed25519",
            "--json",
            stdout=out,
        )
    shown = json.loads(out.getvalue())
    [public_key] = shown["public_keys"]
    page = client.get(f"/e/clinic/webhooks/{shown['id']}/").content.decode()
    assert public_key in page and "/e/clinic/webhooks/jwks.json" in page
    assert "whsk_" not in page and "whsk_" not in out.getvalue()
