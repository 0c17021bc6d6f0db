"""The environment's webhook public keys as a JWKS document (RFC 7517, Ed25519 as OKP per RFC 8037)."""

import base64

from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import cache_control

from ..delivery.signing import raw_public_key
from ..models import ReceiverAuth, SigningSecret, Webhook


@cache_control(public=True, max_age=300)
def webhook_jwks(request, slug):
    """Public keys only (they cannot sign), so no login: receivers fetch them as they fetch any JWKS.

    The document names keys, never webhooks: anyone can read it, and a webhook's
    name says who an environment sends data to. Each key's `kid` is derived from
    the public key alone; the webhook's page shows the same `kid` and key, so
    whoever set a receiver up knows which entry is theirs.
    """
    # An unknown environment answers like one without keys: nobody learns which environments exist.
    now = timezone.now()
    pairs = SigningSecret.objects.filter(
        webhook__environment__slug=slug,
        webhook__security_method=Webhook.SecurityMethod.ED25519,
        algorithm=SigningSecret.Algorithm.ED25519,
    ).order_by("-created_at", "-pk")  # newest first; not by webhook, which would group keys per receiver
    keys = [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64.urlsafe_b64encode(raw_public_key(pair.public_key)).decode().rstrip("="),
            "kid": pair.kid,
            "use": "sig",
            "alg": "EdDSA",
            "webhook_public_key": pair.public_key,
            **({"expires_at": pair.retires_at.isoformat()} if pair.retires_at else {}),
        }
        for pair in pairs
        if pair.is_signing_at(now)
    ]
    return JsonResponse({"keys": keys + receiver_auth_keys(slug, now)})


def receiver_auth_keys(slug: str, now) -> list[dict]:
    """The public keys our private_key_jwt assertions are signed with (RS384/ES384, `kid` "rcv-…"): receivers'
    token endpoints verify them here, as SMART Backend Services has them do. Newest first, no webhook named."""
    auths = ReceiverAuth.objects.filter(
        webhook__environment__slug=slug, method=ReceiverAuth.Method.OAUTH2_JWT
    ).order_by("-key_created_at", "-pk")
    return [key for auth in auths for key in auth.published_jwks(now)]
