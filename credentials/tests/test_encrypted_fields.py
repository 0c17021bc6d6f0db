"""Every secret a model keeps is an encrypted field, and `rotate_encryption_keys` re-encrypts every such field."""

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.core import serializers
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from credentials import secrets
from credentials.fields import EncryptedField, encrypted_fields
from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import make_environment, make_user
from webhooks.models import ReceiverAuth, ReceiverToken
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db


def stored_tokens(field: EncryptedField) -> list[str]:
    """Every value of `field`'s column as stored, whatever the model does on load."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {field.column} FROM {field.model._meta.db_table}")  # noqa: S608 - names from models
        return [token for (token,) in cursor.fetchall()]


def test_rotating_encryption_keys_reencrypts_every_row_of_every_encrypted_field(settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment()
    make_credential(make_client(environment))
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks", extra_headers={"Authorization": "Bearer x"})
    ReceiverAuth.objects.update_or_create(
        webhook=webhook,
        defaults={
            "client_secret": "receiver secret",
            "private_key": "jwt private key",
            "client_key": "tls client key",
            "pending_key": "next tls client key",
        },
    )
    ReceiverToken.objects.update_or_create(webhook=webhook, defaults={"token": "receiver token"})
    # People's authenticator keys, by name: this app does not import the people app, which builds on it.
    apps.get_model("people", "TotpFactor").objects.create(user=make_user(), name="phone", key="00" * 20)
    fields = list(encrypted_fields())
    # A new encrypted field needs a row here, so that this test shows it is rotated.
    assert all(stored_tokens(field) for field in fields), [str(field) for field in fields if not stored_tokens(field)]

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_encryption_keys", "--json", stdout=io.StringIO())

    new_only = Fernet(new_key)
    for field in fields:
        for token in stored_tokens(field):
            try:
                new_only.decrypt(token.encode())
            except InvalidToken:
                pytest.fail(f"{field} still holds a value the new key cannot read")


def test_the_fields_found_by_type_are_every_secret_kept_by_a_model():
    assert {str(field) for field in encrypted_fields()} == {
        "credentials.Credential.secret",
        "webhooks.SigningSecret.secret",
        "webhooks.Webhook.extra_headers",
        "webhooks.ReceiverAuth.client_secret",
        "webhooks.ReceiverAuth.private_key",
        "webhooks.ReceiverAuth.client_key",
        "webhooks.ReceiverAuth.pending_key",
        "webhooks.ReceiverToken.token",
        "people.TotpFactor.key",
    }
    # One way to keep a secret: a column meant to hold ciphertext is an encrypted field, never a plain one.
    plain = [
        str(field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if "encrypted" in field.column and not isinstance(field, EncryptedField)
    ]
    assert plain == []


def test_a_secret_is_read_decrypted_and_stored_as_a_token():
    credential, secret = make_credential(make_client(make_environment()))

    [token] = stored_tokens(credential._meta.get_field("secret"))
    assert secret not in token and secrets.decrypt(token) == secret
    credential.refresh_from_db()
    assert credential.secret == secret


def test_a_dump_holds_the_secrets_as_tokens_and_loads_back_to_the_same_secrets(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment()
    credential, client_secret = make_credential(make_client(environment))
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks", extra_headers={"Authorization": "Bearer x9"})
    keys = list(webhook.signing_secrets.all())
    # Read every secret first: a value already decrypted must not be dumped in clear either.
    signing_keys = {key.pk: key.secret for key in keys}
    assert webhook.extra_headers == {"Authorization": "Bearer x9"}

    dump = serializers.serialize("json", [credential, webhook, *keys])

    for shown_once in (client_secret, *signing_keys.values(), "Bearer x9"):
        assert shown_once not in dump
    loaded = [each.object for each in serializers.deserialize("json", dump)]
    assert loaded[0].secret == credential.secret
    assert loaded[1].extra_headers == {"Authorization": "Bearer x9"}
    assert {key.pk: key.secret for key in loaded[2:]} == signing_keys
