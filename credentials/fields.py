"""Model fields whose values are kept encrypted at rest under FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from . import secrets


class EncryptedJSONField(models.TextField):
    """A JSON value stored as one Fernet token: readable only with the keys, re-encrypted on save.

    Used for values a receiver treats as credentials (a webhook's extra headers):
    the row, a backup or a database dump shows nothing of them. Saving re-encrypts
    under the first key, which is how `rotate_encryption_keys` moves them.
    """

    description = "JSON, Fernet-encrypted"

    def from_db_value(self, value: str | None, expression, connection) -> Any:
        if value is None:
            return value
        return json.loads(secrets.decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(secrets.decrypt(value))
        return value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return secrets.encrypt(json.dumps(value, sort_keys=True))

    def value_to_string(self, obj) -> str:
        return json.dumps(self.value_from_object(obj), sort_keys=True)
