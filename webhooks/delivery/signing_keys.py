"""The keys that sign a webhook's requests now, decrypted once per process and cached.

A webhook's keys are its live signing secrets, or the active credentials it
was set to sign with. Decrypting them (Fernet) on every attempt costs more than
signing, so each worker process keeps them per (webhook, `keys_version`): any
change of keys bumps the version and the next attempt loads afresh. Which key
signs at a given moment is still decided at that moment by the models' own
rules (`SigningSecret.is_signing_at`, `Credential.state_at`), so a rotated
secret stops signing on time without a reload. Entries also expire after
KEYS_CACHE_SECONDS, so a change made outside this app (a credential expiring
early) is seen within that.
"""

from __future__ import annotations

import datetime
import threading
import time
from dataclasses import dataclass

from credentials.models import Credential

from ..models import SigningSecret, Webhook
from . import signing

KEYS_CACHE_SECONDS = 60


@dataclass
class _Key:
    key: signing.SigningKey
    source: SigningSecret | Credential

    def signs_at(self, moment: datetime.datetime) -> bool:
        if isinstance(self.source, SigningSecret):
            return self.source.is_signing_at(moment)
        return self.source.state_at(moment) == Credential.State.ACTIVE


_cache: dict[int, tuple[int, float, list[_Key]]] = {}
_lock = threading.Lock()


def _load(webhook_id: int, security_method: str) -> list[_Key]:
    if security_method == Webhook.SecurityMethod.CREDENTIALS:
        credentials = Credential.objects.filter(webhooks__id=webhook_id, invalidated_at__isnull=True)
        return [
            _Key(signing.key_of_client_secret(credential.secret), credential)
            for credential in credentials.order_by("-created_at")
        ]
    if security_method == Webhook.SecurityMethod.ED25519:
        pairs = SigningSecret.objects.filter(webhook_id=webhook_id, algorithm=SigningSecret.Algorithm.ED25519)
        return [_Key(signing.key_of_private_key(pair.secret), pair) for pair in pairs.order_by("-created_at")]
    secrets = SigningSecret.objects.filter(webhook_id=webhook_id, algorithm=SigningSecret.Algorithm.HMAC_SHA256)
    return [_Key(signing.key_of_signing_secret(secret.secret), secret) for secret in secrets.order_by("-created_at")]


def keys_at(
    webhook_id: int, security_method: str, keys_version: int, moment: datetime.datetime
) -> list[signing.SigningKey]:
    """The keys that sign this webhook's requests at `moment`, newest first."""
    with _lock:
        cached = _cache.get(webhook_id)
    if cached is None or cached[0] != keys_version or cached[1] < time.monotonic():
        keys = _load(webhook_id, security_method)
        with _lock:
            _cache[webhook_id] = (keys_version, time.monotonic() + KEYS_CACHE_SECONDS, keys)
    else:
        keys = cached[2]
    return [each.key for each in keys if each.signs_at(moment)]
