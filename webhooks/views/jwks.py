"""The environment's webhook public keys as a JWKS document (RFC 7517, Ed25519 as OKP per RFC 8037)."""

import base64

from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import cache_control

from ..models import SigningSecret, Webhook
from ..signing import raw_public_key


@cache_control(public=True, max_age=300)
def webhook_jwks(request, slug):
    """Public keys only (they cannot sign), so no login: receivers fetch them as they fetch any JWKS."""
    # An unknown environment answers like one without keys: nobody learns which environments exist.
    now = timezone.now()
    pairs = (
        SigningSecret.objects.filter(
            webhook__environment__slug=slug,
            webhook__security_method=Webhook.SecurityMethod.ED25519,
            algorithm=SigningSecret.Algorithm.ED25519,
        )
        .select_related("webhook")
        .order_by("webhook__name", "-created_at")
    )
    keys = [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64.urlsafe_b64encode(raw_public_key(pair.public_key)).decode().rstrip("="),
            "kid": pair.kid,
            "use": "sig",
            "alg": "EdDSA",
            "webhook": pair.webhook.name,
            "webhook_public_key": pair.public_key,
            **({"expires_at": pair.retires_at.isoformat()} if pair.retires_at else {}),
        }
        for pair in pairs
        if pair.is_signing_at(now)
    ]
    return JsonResponse({"keys": keys})
