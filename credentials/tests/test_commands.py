"""Credential commands: thin wrappers with --json and one-line errors; secrets printed once, by create only."""

import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from credentials import secrets
from credentials.models import AccessToken, Credential
from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential, stored_secret
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_a_client_and_a_credential_from_the_command_line():
    make_environment("clinic")
    created = json.loads(run("create_client", "EHR", "--environment", "clinic", "--scope", "patients:read", "--json"))
    assert created["scopes"] == ["patients:read"]

    credential = json.loads(run("create_credential", created["client_id"], "--name", "Prod", "--json"))
    assert credential["client_secret"].startswith("itcs_")
    stored = Credential.objects.get()
    assert secrets.matches(credential["client_secret"], stored.secret_digest)

    listed = json.loads(run("list_credentials", "--environment", "clinic", "--json"))
    assert [row["name"] for row in listed] == ["Prod"]
    assert credential["client_secret"] not in json.dumps(listed)


def test_invalidate_and_revoke_from_the_command_line():
    env = make_environment("clinic")
    api_client = make_client(env)
    credential, _ = make_credential(api_client)
    issue_token(api_client, credential, None, ip=None)

    assert "stay valid until they expire" in run("invalidate_credential", str(credential.id), "--reason", "left")
    assert json.loads(run("revoke_tokens", "--credential", str(credential.id), "--json")) == {"revoked": 1}
    assert AccessToken.objects.get().revoked_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("create_client", "X", "--environment", "nowhere", "--scope", "patients:read"),
            "unknown environment: nowhere",
        ),
        (("create_client", "X", "--environment", "clinic", "--scope", "pets:read"), "unknown scope(s) for clinic"),
        (("create_credential", "itc_nobody", "--name", "X"), "unknown client_id: itc_nobody"),
        (("invalidate_credential", "not-a-uuid"), "not a credential id"),
        (("revoke_tokens", "--client", "itc_nobody"), "unknown client_id: itc_nobody"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    make_environment("clinic")
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_invalidated_credential_cannot_be_invalidated_twice():
    credential, _ = make_credential(make_client(make_environment()))
    run("invalidate_credential", str(credential.id))
    with pytest.raises(CommandError, match="is already invalidated"):
        run("invalidate_credential", str(credential.id))


def test_rotating_encryption_keys_reencrypts_under_the_new_first_key(settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    credential, secret = make_credential(make_client(make_environment()))
    new_key = Fernet.generate_key().decode()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        assert json.loads(run("rotate_encryption_keys", "--json")) == {
            "reencrypted": 1,
            "credentials": 1,
            "webhook_keys": 0,
            "webhook_headers": 0,
            "receiver_oauth_clients": 0,
            "receiver_bearers": 0,
            "receiver_oauth_keys": 0,
            "receiver_tls_keys": 0,
            "receiver_tls_pending_keys": 0,
            "totp_factors": 0,
        }
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert secrets.decrypt(stored_secret(credential)) == secret
