"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature`.

The signature is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), or with an
Ed25519 key `v1a,` + base64(Ed25519 signature of the same bytes).
One signature per active key, space-separated, so that receivers holding any
of them verify and a key can be rotated without a gap.

Keys:
- a signing secret is `whsec_` + base64 of 32 random bytes; the key is those bytes
  (what the `standardwebhooks` libraries do with a `whsec_` string);
- a credential's key is the UTF-8 bytes of its client secret, as the integrator holds it:
  `Webhook(client_secret.encode())`, or `Webhook("whsec_" + base64(client_secret))` in
  libraries that only take strings;
- an Ed25519 pair is `whsk_` + base64 of the 32-byte private seed (never leaves the server)
  and `whpk_` + base64 of the 32-byte public key (what receivers hold).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"

# A key that signs: HMAC key bytes, or an Ed25519 private key.
SigningKey = bytes | Ed25519PrivateKey


def new_key_pair() -> tuple[str, str]:
    """A new Ed25519 pair as (`whsk_…` private, `whpk_…` public)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PRIVATE_KEY_PREFIX + base64.b64encode(seed).decode(), PUBLIC_KEY_PREFIX + base64.b64encode(public).decode()


def key_of_private_key(private_key: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(private_key.removeprefix(PRIVATE_KEY_PREFIX)))


def raw_public_key(public_key: str) -> bytes:
    return base64.b64decode(public_key.removeprefix(PUBLIC_KEY_PREFIX))


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_of_signing_secret(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SIGNING_SECRET_PREFIX))


def key_of_client_secret(client_secret: str) -> bytes:
    return client_secret.encode()


def signature(key: SigningKey, message_id: str, timestamp: int, body: str) -> str:
    """One signature of the message under one key: `v1,<base64>` (HMAC) or `v1a,<base64>` (Ed25519)."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    if isinstance(key, Ed25519PrivateKey):
        return "v1a," + base64.b64encode(key.sign(signed)).decode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: list[SigningKey], message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value: one signature per key, space-separated."""
    return " ".join(signature(key, message_id, timestamp, body) for key in keys)


SELF_TEST_MARKER = "signed as sent"
SELF_TEST_TAMPERED = "altered after!"


def tampered(body: str) -> str:
    """The body with one phrase changed after signing (same length): its signature no longer matches."""
    if SELF_TEST_MARKER in body:
        return body.replace(SELF_TEST_MARKER, SELF_TEST_TAMPERED, 1)
    return body[:-1] + (" " if body[-1:] != " " else "\t")
