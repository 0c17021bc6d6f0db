"""Model fields whose values are kept encrypted at rest under FIELD_ENCRYPTION_KEYS.

Every secret a model keeps is one of these fields, so there is one way to store
a secret and `rotate_encryption_keys` finds them all by their type
(`encrypted_fields()`), not by a list of names that a new secret could miss.

The column holds one Fernet token. A loaded row keeps the token and decrypts it
the first time the attribute is read: listing credentials or webhooks costs no
decryption, and a page that never shows a secret never decrypts one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import InvalidToken
from django.apps import apps
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from . import secrets


class Sealed:
    """A stored token not decrypted yet."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        # Never the token: reprs end up in logs and error reports.
        return "<Sealed>"


class _DecryptedOnRead(DeferredAttribute):
    """The attribute of an encrypted field: decrypts the loaded token on first read, then keeps the value."""

    field: EncryptedField

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            value = self.field.from_plaintext(secrets.decrypt(value.token))
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance, value) -> None:
        # Defined so that this is a data descriptor, read even though the value sits in the instance's __dict__.
        instance.__dict__[self.field.attname] = value


class EncryptedField(models.TextField):
    """A value stored as one Fernet token under the first of FIELD_ENCRYPTION_KEYS, readable with any of them."""

    descriptor_class = _DecryptedOnRead

    def __init__(self, *args, reported_as: tuple[str, str] = ("", ""), **kwargs) -> None:
        # How `rotate_encryption_keys` reports this field: its key in --json, and the words after the count.
        # Not part of the column, so not in migrations.
        self.reported_as = reported_as
        super().__init__(*args, **kwargs)

    def to_plaintext(self, value: Any) -> str:
        """The text that is encrypted for `value`."""
        raise NotImplementedError

    def from_plaintext(self, plaintext: str) -> Any:
        """The value a decrypted token stands for."""
        raise NotImplementedError

    def from_db_value(self, value: str | None, expression, connection) -> Sealed | None:
        return None if value is None else Sealed(value)

    def to_python(self, value: Any) -> Any:
        # A loaded token given to be converted (the ledger reads rows without the ORM): its value.
        if isinstance(value, Sealed):
            return self.from_plaintext(secrets.decrypt(value.token))
        return value

    def value_to_string(self, obj: models.Model) -> str:
        # What a dump (`dumpdata`, a serializer) holds: the token, never the value. Not through the
        # attribute, which would decrypt it.
        value = obj.__dict__.get(self.attname)
        return value.token if isinstance(value, Sealed) else secrets.encrypt(self.to_plaintext(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        # Not through the attribute, which would decrypt a value that is only to be stored again.
        if self.attname in model_instance.__dict__:
            return model_instance.__dict__[self.attname]
        return super().pre_save(model_instance, add)

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, Sealed):
            # Loaded and never read: stored again as it was.
            return value.token
        return secrets.encrypt(self.to_plaintext(value))

    def reencrypt(self, instance: models.Model) -> None:
        """Have the next save of `instance` store this field under the first key."""
        value = instance.__dict__.get(self.attname)
        if isinstance(value, Sealed):
            # MultiFernet.rotate keeps the token's original timestamp and never shows the value.
            instance.__dict__[self.attname] = Sealed(secrets.reencrypt(value.token))
        # A value already decrypted (or set) is encrypted under the first key when saved.


class EncryptedTextField(EncryptedField):
    """A text secret (a client secret, a signing key) stored encrypted."""

    description = "Text, Fernet-encrypted"

    def to_plaintext(self, value: Any) -> str:
        return str(value)

    def from_plaintext(self, plaintext: str) -> str:
        return plaintext

    def to_python(self, value: Any) -> Any:
        # A token read back from a dump stays sealed (and is stored as it was); any other text is a value.
        if isinstance(value, str) and _is_token(value):
            return Sealed(value)
        return super().to_python(value)


def _is_token(text: str) -> bool:
    try:
        secrets.decrypt(text)
    except (InvalidToken, ValueError, TypeError):
        return False
    return True


class EncryptedJSONField(EncryptedField):
    """A JSON value stored encrypted.

    Used for values a receiver treats as credentials (a webhook's extra headers):
    the row, a backup or a database dump shows nothing of them.
    """

    description = "JSON, Fernet-encrypted"

    def to_plaintext(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True)

    def from_plaintext(self, plaintext: str) -> Any:
        return json.loads(plaintext)

    def to_python(self, value: Any) -> Any:
        # Text is a token (from a dump): a JSON value given to be stored is never a string.
        if isinstance(value, str):
            return json.loads(secrets.decrypt(value))
        return super().to_python(value)


def encrypted_fields() -> Iterator[EncryptedField]:
    """Every encrypted field of every installed model, in app and model order."""
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, EncryptedField) and field.concrete:
                yield field
