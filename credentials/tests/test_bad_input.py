"""OAuth endpoints, credential pages and commands refuse bad input clearly (issue 10): RFC 6749 JSON, 4xx, one line."""

import base64

import pytest

from credentials.models import Client, Credential
from credentials.tests.factories import form_post, make_client, make_credential
from environments.models import AuditEvent
from environments.tests.bad_input import assert_command_refused, assert_oauth_refused, assert_refused
from environments.tests.factories import log_in_director, make_environment

pytestmark = pytest.mark.django_db

ENDPOINTS = ["/oauth/token", "/oauth/revoke"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_nul_in_the_client_id_form_field_is_an_rfc6749_error(client, endpoint):
    response = form_post(
        client, endpoint, {"grant_type": "client_credentials", "token": "t", "client_id": "a\x00", "client_secret": "s"}
    )
    assert "NUL" in assert_oauth_refused(response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_nul_in_the_basic_user_is_an_rfc6749_error(client, endpoint):
    basic = base64.b64encode(b"a%00b:secret").decode()
    response = form_post(
        client,
        endpoint,
        {"grant_type": "client_credentials", "token": "t"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert "NUL" in assert_oauth_refused(response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_3_mb_body_is_an_rfc6749_error_not_django_s_page(client, endpoint, settings):
    settings.DEBUG = True
    response = form_post(client, endpoint, {"grant_type": "client_credentials", "client_id": "x" * 3_000_000})
    assert "too large" in assert_oauth_refused(response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_1500_parameters_are_an_rfc6749_error_not_django_s_page(client, endpoint, settings):
    settings.DEBUG = True
    response = form_post(client, endpoint, {f"p{n}": "1" for n in range(1500)})
    assert "too many parameters" in assert_oauth_refused(response)


@pytest.fixture
def director(client):
    environment = make_environment("clinic")
    log_in_director(client, environment)
    return environment


@pytest.mark.parametrize(
    "path",
    [
        "/e/clinic/credentials/?q=a%00",
        "/e/clinic/credentials/clients/itc_a%00b/rotation/",
        "/e/clinic/credentials/clients/itc_a%00b/new-credential/",
    ],
)
def test_portal_addresses_with_a_nul_get_a_clear_400_page(client, director, path):
    assert "NUL character" in assert_refused(client.get(path))


def test_a_nul_in_a_posted_form_is_a_clear_400_and_saves_nothing(client, director):
    response = form_post(client, "/e/clinic/credentials/clients/new/", {"name": "EHR\x00", "scopes": "patients:read"})
    assert "NUL character" in assert_refused(response)
    assert not Client.objects.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("create_client", "x" * 101, "--environment", "clinic", "--scope", "patients:read"), "at most 100"),
        (("create_client", "EHR\x00", "--environment", "clinic", "--scope", "patients:read"), "NUL"),
    ],
)
def test_create_client_refuses_names_the_column_cannot_hold(args, says):
    make_environment("clinic")
    assert_command_refused(*args, says=says)
    assert not Client.objects.exists()


def test_create_credential_refuses_a_name_longer_than_the_column():
    api_client = make_client(make_environment("clinic"))
    assert_command_refused("create_credential", api_client.client_id, "--name", "n" * 101, says="at most 100")
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("invalidate_credential", "{credential}", "--reason", "r" * 501), "is 501 characters long; at most 500"),
        (("invalidate_credential", "{credential}", "--reason", "left\x00"), "NUL character"),
        (("revoke_tokens", "--credential", "{credential}", "--reason", "r" * 201), "at most 200 are allowed"),
        (("revoke_tokens", "--client", "{client}", "--reason", "leak\x00"), "NUL character"),
        (("list_credentials", "--environment", "clinic", "--search", "a\x00"), "the search contains a NUL"),
    ],
)
def test_credential_commands_refuse_text_their_columns_cannot_hold_in_one_line(args, says):
    api_client = make_client(make_environment("clinic"))
    credential, _ = make_credential(api_client)
    args = [arg.format(credential=credential.pk, client=api_client.client_id) for arg in args]
    assert_command_refused(*args, says=says)
    credential.refresh_from_db()
    assert credential.invalidated_at is None
    assert not AuditEvent.objects.filter(action__in=["credential.invalidated", "tokens.revoked"]).exists()
