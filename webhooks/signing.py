"""Standard Webhooks signatures: `webhook-id`, `webhook-timestamp`, `webhook-signature`.

The signature is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
One signature per active key, space-separated, so that receivers holding any
of them verify and a key can be rotated without a gap.

Keys:
- a signing secret is `whsec_` + base64 of 32 random bytes; the key is those bytes
  (what the `standardwebhooks` libraries do with a `whsec_` string);
- a credential's key is the UTF-8 bytes of its client secret, as the integrator holds it:
  `Webhook(client_secret.encode())`, or `Webhook("whsec_" + base64(client_secret))` in
  libraries that only take strings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_of_signing_secret(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SIGNING_SECRET_PREFIX))


def key_of_client_secret(client_secret: str) -> bytes:
    return client_secret.encode()


def signature(key: bytes, message_id: str, timestamp: int, body: str) -> str:
    """One `v1,<base64>` signature of the message under one key."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(keys: list[bytes], message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header value: one signature per key, space-separated."""
    return " ".join(signature(key, message_id, timestamp, body) for key in keys)


SELF_TEST_MARKER = "signed as sent"
SELF_TEST_TAMPERED = "altered after!"


def tampered(body: str) -> str:
    """The body with one phrase changed after signing (same length): its signature no longer matches."""
    if SELF_TEST_MARKER in body:
        return body.replace(SELF_TEST_MARKER, SELF_TEST_TAMPERED, 1)
    return body[:-1] + (" " if body[-1:] != " " else "\t")
