"""private_key_jwt (RFC 7523, SMART Backend Services): the portal's key signs the client assertion, the
receiver's authorization server (Authlib's) verifies it against the environment's published JWKS."""

import json
import urllib.error
import urllib.request
from urllib.parse import urlencode

import jwt
import pytest

from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.delivery import authorization
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Attempt, Delivery, ReceiverAuth
from webhooks.receiver_auth import ReceiverAuthFields, rotate_client_key, set_receiver_auth
from webhooks.tests.authorization_server import AuthorizationServer
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_caches():
    authorization._settings.clear()
    authorization._tokens.clear()


def send_one(webhook) -> Attempt:
    create_record(webhook.environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
    return attempt_delivery(Delivery.objects.filter(webhook=webhook).latest("id").pk)


def jwt_webhook(server, receiver, live_server, algorithm):
    environment = make_environment()
    webhook = make_webhook(environment, receiver.url, event_types=["patients.created"])
    fields = ReceiverAuthFields(
        method="oauth2-jwt",
        token_url=server.token_url,
        client_id="smart-backend",
        key_algorithm=algorithm,
        scope="system/Patient.write",
    )
    set_receiver_auth(webhook, fields)
    jwks_url = f"{live_server.url}/e/{environment.slug}/webhooks/jwks.json"
    server.register("smart-backend", auth_method="private_key_jwt", jwks_url=jwks_url)
    return webhook, jwks_url


def token_request(url: str, form: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=urlencode(form).encode(), method="POST")  # noqa: S310 - test server
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_the_assertion_verifies_against_our_jwks_and_a_replayed_one_is_refused(live_server, algorithm):
    with AuthorizationServer() as server, Receiver(judge=server.protects) as receiver:
        webhook, jwks_url = jwt_webhook(server, receiver, live_server, algorithm)
        first_attempt = send_one(webhook)
        assert first_attempt.succeeded, (first_attempt.error, first_attempt.error_detail, server.state.refused)
        server.revoke_all()
        assert send_one(webhook).succeeded, "a second token, with a second assertion"
        assert server.issued == 2

        first, second = server.state.assertions
        auth = ReceiverAuth.objects.get(webhook=webhook)
        header, claims = jwt.get_unverified_header(first), jwt.decode(first, options={"verify_signature": False})
        assert header["alg"] == algorithm and header["kid"] == auth.kid
        assert claims["iss"] == claims["sub"] == "smart-backend"
        assert claims["aud"] == server.token_url
        assert 0 < claims["exp"] - claims["iat"] <= 300, "SMART: exp at most five minutes ahead"
        assert claims["jti"] != jwt.decode(second, options={"verify_signature": False})["jti"]

        replayed = {
            "grant_type": "client_credentials",
            "client_assertion_type": authorization.ASSERTION_TYPE,
            "client_assertion": first,
        }
        status, answer = token_request(server.token_url, replayed)
        assert status in (400, 401) and answer["error"] == "invalid_client", answer
        assert "used before" in answer["error_description"]

    published = json.load(urllib.request.urlopen(jwks_url))["keys"]  # noqa: S310 - the live test server
    [ours] = [key for key in published if key["kid"] == auth.kid]
    assert ours["alg"] == algorithm and ours["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(ours), "public members only"


def test_a_rotated_key_signs_at_once_and_the_old_public_key_stays_published_for_the_overlap(live_server, client):
    with AuthorizationServer() as server, Receiver(judge=server.protects) as receiver:
        webhook, _ = jwt_webhook(server, receiver, live_server, "ES384")
        old_kid = ReceiverAuth.objects.get(webhook=webhook).kid
        rotated = rotate_client_key(webhook)
        assert send_one(webhook).succeeded

    [assertion] = server.state.assertions
    assert jwt.get_unverified_header(assertion)["kid"] == rotated.kid != old_kid
    kids = [key["kid"] for key in client.get(f"/e/{webhook.environment.slug}/webhooks/jwks.json").json()["keys"]]
    assert kids == [rotated.kid, old_kid]


def test_a_token_endpoint_that_does_not_know_our_key_refuses_with_auth_failed(live_server):
    with AuthorizationServer() as server, Receiver(judge=server.protects) as receiver:
        webhook, _ = jwt_webhook(server, receiver, live_server, "RS384")
        # The receiver registered another environment's JWKS: our key is not there.
        elsewhere = make_environment()
        other = make_webhook(elsewhere, receiver.url, event_types=["patients.created"])
        set_receiver_auth(other, ReceiverAuthFields("oauth2-jwt", server.token_url, "someone", key_algorithm="RS384"))
        server.state.clients["smart-backend"].jwks_url = f"{live_server.url}/e/{elsewhere.slug}/webhooks/jwks.json"
        attempt = send_one(webhook)

    assert attempt.error == "auth_failed"
    assert "refused our client credentials (invalid_client" in attempt.error_detail
    assert receiver.requests == []
