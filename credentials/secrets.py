"""Generating, digesting, comparing and encrypting secrets. One place, so the rules are the same everywhere.

Secrets carry a recognisable prefix so that secret scanners (and people) can
spot a leaked one: `itcs_` for client secrets, `itat_` for access tokens.
Both hold 256 bits from the operating system's CSPRNG. Because they are long
random strings, not passwords, a single SHA-256 is the right digest: a slow
hash would protect nothing more and would slow every token request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

# Prefixes, not secrets.
CLIENT_SECRET_PREFIX = "itcs_"  # noqa: S105
ACCESS_TOKEN_PREFIX = "itat_"  # noqa: S105
CLIENT_ID_PREFIX = "itc_"


def new_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)


def new_access_token() -> str:
    return ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_hex(12)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, expected_digest: str) -> bool:
    """Constant-time check of a presented secret against a stored digest."""
    return hmac.compare_digest(digest(secret), expected_digest)


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in settings.FIELD_ENCRYPTION_KEYS])


def encrypt(secret: str) -> str:
    """Encrypt under the first of FIELD_ENCRYPTION_KEYS."""
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt with any of FIELD_ENCRYPTION_KEYS."""
    return _fernet().decrypt(token.encode()).decode()


def reencrypt(token: str) -> str:
    """Re-encrypt under the first key (MultiFernet.rotate keeps the original timestamp)."""
    return _fernet().rotate(token.encode()).decode()
