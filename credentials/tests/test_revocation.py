"""Invalidation keeps issued tokens (as the reference product does); revocation ends them at once."""

import datetime

import pytest
from django.utils import timezone

from credentials.models import AccessToken
from credentials.services import invalidate_credential, revoke_tokens
from credentials.tests.factories import form_post, make_client, make_credential
from credentials.tests.test_token_endpoint import basic
from environments.records import create_record
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db


@pytest.fixture
def app():
    env = make_environment("clinic")
    create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
    api_client = make_client(env)
    credential, secret = make_credential(api_client)
    return env, api_client, credential, secret


def get_token(client, api_client, secret) -> str:
    response = form_post(
        client,
        "/oauth/token",
        {"grant_type": "client_credentials"},
        headers={"Authorization": basic(api_client.client_id, secret)},
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def list_patients(client, token):
    return client.get("/api/v1/clinic/patients/", headers={"Authorization": f"Bearer {token}"})


def test_tokens_issued_before_invalidation_keep_working_until_they_expire(client, app):
    _, api_client, credential, secret = app
    token = get_token(client, api_client, secret)
    invalidate_credential(credential, reason="employee left")

    assert list_patients(client, token).status_code == 200

    AccessToken.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    expired = list_patients(client, token)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "invalid_token"
    assert expired["WWW-Authenticate"] == (
        'Bearer realm="Integration Tools", error="invalid_token", error_description="the access token is expired"'
    )


def test_revoking_issued_tokens_ends_them_at_once(client, app):
    _, api_client, credential, secret = app
    token = get_token(client, api_client, secret)
    other_credential, other_secret = make_credential(api_client, name="Other")
    other_token = get_token(client, api_client, other_secret)

    assert revoke_tokens(credential=credential, reason="leaked") == 1

    response = list_patients(client, token)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the access token is revoked"
    assert list_patients(client, other_token).status_code == 200
    assert revoke_tokens(client=api_client) == 1
    assert list_patients(client, other_token).status_code == 401


def test_a_client_revokes_its_own_token_per_rfc_7009(client, app):
    _, api_client, _, secret = app
    token = get_token(client, api_client, secret)
    response = form_post(
        client, "/oauth/revoke", {"token": token}, headers={"Authorization": basic(api_client.client_id, secret)}
    )
    assert response.status_code == 200
    assert list_patients(client, token).status_code == 401


def test_revoking_someone_elses_token_is_a_silent_no_op(client, app):
    env, api_client, _, secret = app
    token = get_token(client, api_client, secret)
    stranger = make_client(env, name="Stranger")
    _, stranger_secret = make_credential(stranger)

    response = form_post(
        client, "/oauth/revoke", {"token": token}, headers={"Authorization": basic(stranger.client_id, stranger_secret)}
    )
    assert response.status_code == 200
    assert list_patients(client, token).status_code == 200


def test_revocation_needs_client_authentication(client, app):
    _, api_client, _, secret = app
    token = get_token(client, api_client, secret)
    response = form_post(client, "/oauth/revoke", {"token": token})
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert list_patients(client, token).status_code == 200
