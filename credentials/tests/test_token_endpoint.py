"""POST /oauth/token: RFC 6749 §4.4 client credentials, with §5.2 errors exactly."""

import base64
import datetime
from urllib.parse import quote

import pytest
from django.utils import timezone

from credentials import secrets
from credentials.models import AccessToken, AuthFailure
from credentials.services import invalidate_credential
from credentials.tests.factories import form_post, make_client, make_credential
from environments.configurations import publish_document
from environments.demo import DEMO_SCHEMA
from environments.models import AuditEvent
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db

GRANT = {"grant_type": "client_credentials"}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote(client_id)}:{quote(secret)}".encode()).decode()


@pytest.fixture
def app():
    env = make_environment("clinic")
    api_client = make_client(env, scopes=["patients:read", "patients:write", "workers:read"])
    credential, secret = make_credential(api_client)
    return env, api_client, credential, secret


def post_token(client, data=None, **headers):
    return form_post(
        client, "/oauth/token", GRANT if data is None else data, REMOTE_ADDR="198.51.100.4", headers=headers
    )


def test_basic_authentication_gets_a_bearer_token(client, app):
    env, api_client, credential, secret = app
    response = post_token(client, Authorization=basic(api_client.client_id, secret))

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "patients:read patients:write workers:read"
    assert body["access_token"].startswith("itat_")
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"

    token = AccessToken.objects.get()
    assert token.token_digest == secrets.digest(body["access_token"])
    assert (token.credential, token.environment, token.issued_ip) == (credential, env, "198.51.100.4")
    credential.refresh_from_db()
    assert credential.last_used_ip == "198.51.100.4"
    issued = AuditEvent.objects.get(action="token.issued")
    assert issued.actor_type == "client"
    assert body["access_token"] not in str(issued.details)


def test_form_fields_authenticate_too(client, app):
    _, api_client, _, secret = app
    response = post_token(client, {**GRANT, "client_id": api_client.client_id, "client_secret": secret})
    assert response.status_code == 200


def test_a_narrower_scope_can_be_requested(client, app):
    _, api_client, _, secret = app
    response = post_token(
        client, {**GRANT, "scope": "patients:read"}, Authorization=basic(api_client.client_id, secret)
    )
    assert response.json()["scope"] == "patients:read"
    assert AccessToken.objects.get().scopes == ["patients:read"]


def error_of(response):
    return response.status_code, response.json()["error"]


def test_a_scope_beyond_the_clients_is_invalid_scope(client, app):
    _, api_client, _, secret = app
    response = post_token(
        client, {**GRANT, "scope": "patients:read assessments:read"}, Authorization=basic(api_client.client_id, secret)
    )
    assert error_of(response) == (400, "invalid_scope")
    assert response.json()["error_description"] == "the client may not request: assessments:read"
    assert not AccessToken.objects.exists()


def test_a_wrong_secret_over_basic_is_invalid_client_with_www_authenticate(client, app):
    _, api_client, _, _ = app
    response = post_token(client, Authorization=basic(api_client.client_id, "itcs_wrong"))
    assert error_of(response) == (401, "invalid_client")
    assert response["WWW-Authenticate"] == 'Basic realm="Integration Tools"'
    assert response["Cache-Control"] == "no-store"
    failure = AuthFailure.objects.get()
    assert (failure.client_id, failure.reason, failure.ip) == (api_client.client_id, "bad_secret", "198.51.100.4")
    assert AuditEvent.objects.filter(action="client.authentication_failed", details__reason="bad_secret").exists()


def test_a_wrong_secret_in_the_form_is_invalid_client_without_a_challenge(client, app):
    _, api_client, _, _ = app
    response = post_token(client, {**GRANT, "client_id": api_client.client_id, "client_secret": "nope"})
    assert error_of(response) == (401, "invalid_client")
    assert "WWW-Authenticate" not in response


def test_an_unknown_client_is_invalid_client(client, app):
    response = post_token(client, {**GRANT, "client_id": "itc_nobody", "client_secret": "x"})
    assert error_of(response) == (401, "invalid_client")
    assert AuthFailure.objects.get().reason == "unknown_client"


def test_no_client_authentication_is_invalid_client(client, app):
    assert error_of(post_token(client)) == (401, "invalid_client")


@pytest.mark.parametrize(
    ("data", "description"),
    [
        ({}, "the parameter grant_type is missing"),
        ({"grant_type": ["client_credentials", "client_credentials"]}, "the parameter grant_type is repeated"),
    ],
)
def test_malformed_requests_are_invalid_request(client, app, data, description):
    _, api_client, _, secret = app
    response = post_token(client, data, Authorization=basic(api_client.client_id, secret))
    assert error_of(response) == (400, "invalid_request")
    assert response.json()["error_description"] == description


def test_two_authentication_methods_at_once_are_invalid_request(client, app):
    _, api_client, _, secret = app
    response = post_token(
        client,
        {**GRANT, "client_id": api_client.client_id, "client_secret": secret},
        Authorization=basic(api_client.client_id, secret),
    )
    assert error_of(response) == (400, "invalid_request")


def test_a_json_body_is_invalid_request(client, app):
    response = client.post("/oauth/token", GRANT, content_type="application/json")
    assert error_of(response) == (400, "invalid_request")
    assert response.json()["error_description"] == "the request body must be application/x-www-form-urlencoded"


def test_get_is_not_allowed(client, app):
    response = client.get("/oauth/token")
    assert error_of(response) == (405, "invalid_request")
    assert response["Allow"] == "POST"


def test_other_grant_types_are_unsupported(client, app):
    _, api_client, _, secret = app
    response = post_token(client, {"grant_type": "password"}, Authorization=basic(api_client.client_id, secret))
    assert error_of(response) == (400, "unsupported_grant_type")


def test_a_client_whose_scopes_left_the_schema_is_unauthorized_client(client):
    env = make_environment("clinic")
    schema = {"data_types": {**DEMO_SCHEMA["data_types"], "visits": {"fields": {"n": {"type": "integer"}}}}}
    publish_document(schema, ["clinic"])
    env.refresh_from_db()
    api_client = make_client(env, scopes=["visits:read"])
    _, secret = make_credential(api_client)
    publish_document(DEMO_SCHEMA, ["clinic"])  # visits removed

    response = post_token(client, Authorization=basic(api_client.client_id, secret))
    assert error_of(response) == (400, "unauthorized_client")


def test_an_invalidated_credential_gets_no_new_token(client, app):
    _, api_client, credential, secret = app
    invalidate_credential(credential, reason="rotated")
    response = post_token(client, Authorization=basic(api_client.client_id, secret))
    assert error_of(response) == (401, "invalid_client")
    assert AuthFailure.objects.get().reason == "inactive_credential"


def test_an_expired_credential_gets_no_new_token(client, app):
    _, api_client, credential, secret = app
    credential.expires_at = timezone.now() - datetime.timedelta(seconds=1)
    credential.save(update_fields=["expires_at"])
    assert error_of(post_token(client, Authorization=basic(api_client.client_id, secret))) == (401, "invalid_client")


def test_several_active_credentials_each_work(client, app):
    _, api_client, _, first_secret = app
    _, second_secret = make_credential(api_client, name="Rotation")
    for secret in (first_secret, second_secret):
        assert post_token(client, Authorization=basic(api_client.client_id, secret)).status_code == 200
    assert AccessToken.objects.values("credential").distinct().count() == 2


def test_repeated_failures_are_throttled_with_retry_after(client, app, settings):
    settings.OAUTH_MAX_FAILURES_PER_CLIENT = 3
    _, api_client, _, secret = app
    for _ in range(3):
        assert post_token(client, Authorization=basic(api_client.client_id, "bad")).status_code == 401

    response = post_token(client, Authorization=basic(api_client.client_id, secret))
    assert error_of(response) == (429, "slow_down")
    assert 1 <= int(response["Retry-After"]) <= settings.OAUTH_FAILURE_WINDOW_SECONDS
    assert AuthFailure.objects.filter(reason="throttled").count() == 1
    assert not AccessToken.objects.exists()


def test_failures_from_one_address_are_throttled_across_clients(client, app, settings):
    settings.OAUTH_MAX_FAILURES_PER_IP = 2
    for n in range(2):
        post_token(client, {**GRANT, "client_id": f"itc_guess{n}", "client_secret": "x"})
    _, api_client, _, secret = app
    assert post_token(client, Authorization=basic(api_client.client_id, secret)).status_code == 429


def test_the_overview_counts_issued_failed_and_throttled_token_requests(client, app, settings):
    from environments.tests.factories import make_user

    settings.OAUTH_MAX_FAILURES_PER_CLIENT = 2
    _, api_client, _, secret = app
    post_token(client, Authorization=basic(api_client.client_id, secret))
    for _ in range(3):
        post_token(client, Authorization=basic(api_client.client_id, "wrong"))

    client.force_login(make_user(admin=True))
    page = client.get("/e/clinic/").content.decode()
    assert "<dt>Tokens issued</dt><dd>1</dd>" in page
    assert '<dt>Failed authentications</dt><dd><span class="badge bad">2</span>' in page
    assert '<dt>Throttled token requests</dt><dd><span class="badge bad">1</span>' in page


def test_secrets_and_tokens_never_reach_the_logs_or_the_audit_trail(client, app, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    _, api_client, _, secret = app
    token = post_token(client, Authorization=basic(api_client.client_id, secret)).json()["access_token"]
    post_token(client, {**GRANT, "client_id": api_client.client_id, "client_secret": secret + "x"})
    client.get("/api/v1/clinic/patients/", headers={"Authorization": f"Bearer {token}x"})

    logged = caplog.text
    audited = " ".join(f"{e.actor_label} {e.target_label} {e.details}" for e in AuditEvent.objects.all())
    for value in (secret, token):
        assert value not in logged
        assert value not in audited
    assert "Unauthorized: /oauth/token" in logged  # the logs were captured at all


def test_a_credential_stops_authenticating_at_the_second_it_expires(client, app):
    import time

    _, api_client, credential, secret = app
    credential.expires_at = timezone.now() + datetime.timedelta(seconds=1.5)
    credential.save(update_fields=["expires_at"])
    assert post_token(client, Authorization=basic(api_client.client_id, secret)).status_code == 200
    while timezone.now() < credential.expires_at:  # bounded: 1.5 s at most
        time.sleep(0.05)
    assert error_of(post_token(client, Authorization=basic(api_client.client_id, secret))) == (401, "invalid_client")
