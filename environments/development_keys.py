"""The public development keys, and how to recognise them however they are written.

They are in the source, so anyone can read them: production refuses them
(settings.py) and `check --deploy` reports them (environments/checks.py). A key
pasted with a trailing space or newline is still the same key: Fernet decodes
base64 ignoring whitespace, and a secret that differs by whitespace is as public
as the original. So both compare what the key *is*, not how it was spelled.
"""

import base64
import binascii

DEVELOPMENT_SECRET_KEY = "dev-only-secret-key-not-for-production-use-0123456789abcdefghij"  # noqa: S105
DEVELOPMENT_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UtISE="


def is_development_secret_key(value: str) -> bool:
    """Whether `value` is the public development SECRET_KEY, give or take surrounding whitespace."""
    return value.strip() == DEVELOPMENT_SECRET_KEY


def _key_bytes(key: str) -> bytes | None:
    # The same decoding Fernet applies: characters outside the alphabet (whitespace) are dropped.
    try:
        return base64.urlsafe_b64decode(key)
    except (binascii.Error, ValueError):
        return None


def is_development_field_key(key: str) -> bool:
    """Whether `key` decodes to the public development Fernet key (spaces, newlines and all)."""
    return _key_bytes(key) == _key_bytes(DEVELOPMENT_FIELD_ENCRYPTION_KEY)


def normalised_keys(keys: list[str]) -> list[str]:
    """FIELD_ENCRYPTION_KEYS as written, without the whitespace around each key or empty entries."""
    return [key.strip() for key in keys if key.strip()]
