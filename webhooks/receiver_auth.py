"""Configuring how a webhook authenticates to its receiver (issue 23): OAuth 2.0 client credentials.

Forms and commands call `set_receiver_auth`; sending reads the result through
`webhooks/delivery/authorization.py`. Secrets are written, never read back:
a change that leaves the secret empty keeps the stored one. Every change is
audited by what changed, never a value, and bumps the webhook's
`keys_version` so that workers reload the settings and fetch a new token.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from environments.audit import record_audit
from portal.actor import SYSTEM_ACTOR, Actor

from .delivery.outbound import InvalidDestination, check_url
from .models import ReceiverAuth, Webhook

METHODS = ReceiverAuth.Method.values
# What the audit trail names for each setting that changed (never its value).
_SETTING_NAMES = {
    "method": "method",
    "token_url": "token URL",
    "client_id": "client id",
    "secret_method": "client authentication",
    "scope": "scope",
    "resource": "resource",
    "key_algorithm": "key algorithm",
}
KEY_ALGORITHMS = ("RS384", "ES384")
# How long a replaced private_key_jwt key stays in the JWKS: receivers cache JWKS documents.
KEY_OVERLAP = datetime.timedelta(days=1)


class ReceiverAuthInvalid(ValueError):
    """Settings that do not hold; `errors` maps each field to a sentence."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass
class ReceiverAuthFields:
    """What a user sets; `client_secret` empty keeps the stored secret."""

    method: str = ReceiverAuth.Method.NONE
    token_url: str = ""
    client_id: str = ""
    client_secret: str = ""
    secret_method: str = ReceiverAuth.SecretMethod.BASIC
    scope: str = ""
    key_algorithm: str = "RS384"
    resource: str = ""

    def __repr__(self) -> str:
        return f"<ReceiverAuthFields {self.method} {self.client_id} at {self.token_url}>"


def receiver_auth_of(webhook: Webhook) -> ReceiverAuth:
    """The webhook's receiver authentication (unsaved, method none, if it never had one)."""
    return ReceiverAuth.objects.filter(webhook=webhook).first() or ReceiverAuth(webhook=webhook)


def _validate(fields: ReceiverAuthFields, stored: ReceiverAuth) -> dict[str, str]:
    errors: dict[str, str] = {}
    if fields.method not in METHODS:
        return {"receiver_auth": f"choose one of {', '.join(METHODS)}"}
    if fields.method == ReceiverAuth.Method.NONE:
        return errors
    fields.token_url, fields.client_id, fields.scope = (
        fields.token_url.strip(),
        fields.client_id.strip(),
        fields.scope.strip(),
    )
    try:
        check_url(fields.token_url)
    except InvalidDestination as error:
        errors["token_url"] = f"the token URL: {error}"
    if not fields.client_id:
        errors["oauth_client_id"] = "the client id the receiver registered for us is needed"
    elif len(fields.client_id) > 255:
        errors["oauth_client_id"] = "at most 255 characters"
    if (
        fields.method == ReceiverAuth.Method.OAUTH2_SECRET
        and fields.secret_method not in ReceiverAuth.SecretMethod.values
    ):
        errors["oauth_client_auth"] = f"choose {' or '.join(ReceiverAuth.SecretMethod.values)}"
    if fields.method == ReceiverAuth.Method.OAUTH2_SECRET and not (fields.client_secret or stored.client_secret):
        errors["oauth_client_secret"] = "the client secret the receiver gave us is needed"  # noqa: S105
    if fields.method == ReceiverAuth.Method.OAUTH2_JWT and fields.key_algorithm not in KEY_ALGORITHMS:
        errors["oauth_key_algorithm"] = f"choose {' or '.join(KEY_ALGORITHMS)}"
    fields.resource = fields.resource.strip()
    if len(fields.resource) > 2000:
        errors["oauth_resource"] = "at most 2000 characters"
    if len(fields.scope) > 500:
        errors["oauth_scope"] = "at most 500 characters"
    return errors


def _changes(fields: ReceiverAuthFields, stored: ReceiverAuth) -> list[str]:
    changed = [label for name, label in _SETTING_NAMES.items() if getattr(fields, name) != getattr(stored, name)]
    if fields.client_secret and fields.client_secret != stored.client_secret:
        changed.append("client secret replaced")
    return changed


def set_receiver_auth(webhook: Webhook, fields: ReceiverAuthFields, actor: Actor = SYSTEM_ACTOR) -> list[str]:
    """Save the webhook's receiver authentication; returns what changed (names, for a message and the audit).
    Raises ReceiverAuthInvalid."""
    stored = receiver_auth_of(webhook)
    errors = _validate(fields, stored)
    if errors:
        raise ReceiverAuthInvalid(errors)
    if fields.method == ReceiverAuth.Method.NONE:
        # Nothing else matters without a method: keep the rest as it was, for switching back.
        fields = ReceiverAuthFields(**{**vars(_fields_of(stored)), "method": ReceiverAuth.Method.NONE})
    if fields.method != ReceiverAuth.Method.OAUTH2_JWT:
        fields.key_algorithm = stored.key_algorithm  # only private_key_jwt has a key
    if fields.method != ReceiverAuth.Method.OAUTH2_SECRET:
        fields.secret_method = stored.secret_method  # only a client secret has a way to be sent
    changed = _changes(fields, stored)
    if not changed:
        return []
    for name in _SETTING_NAMES:
        setattr(stored, name, getattr(fields, name))
    if fields.client_secret:
        stored.client_secret = fields.client_secret
    if fields.method == ReceiverAuth.Method.OAUTH2_JWT and (not stored.private_key or "key algorithm" in changed):
        _replace_key(stored)
        changed.append("key pair generated")
    stored.updated_at = timezone.now()
    with transaction.atomic():
        stored.save()
        # Workers reload the settings and fetch a token under them (the old one is never used again).
        Webhook.objects.filter(pk=webhook.pk).update(keys_version=F("keys_version") + 1)
        record_audit(
            actor,
            "webhook.receiver_auth_changed",
            target=webhook,
            environment=webhook.environment,
            details={"changed": changed, "method": fields.method},
        )
    webhook.refresh_from_db(fields=["keys_version"])
    return changed


def _fields_of(stored: ReceiverAuth) -> ReceiverAuthFields:
    return ReceiverAuthFields(
        method=stored.method,
        token_url=stored.token_url,
        client_id=stored.client_id,
        secret_method=stored.secret_method,
        scope=stored.scope,
        key_algorithm=stored.key_algorithm,
        resource=stored.resource,
    )


def new_client_key(algorithm: str) -> tuple[str, dict]:
    """A private_key_jwt key pair: (the private key as PKCS#8 PEM, the public JWK with its `kid`)."""
    if algorithm == "ES384":
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = ec.generate_private_key(ec.SECP384R1())
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    # RFC 7638 thumbprint: the required members, sorted, without spaces.
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True)
    kid = "rcv-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def _replace_key(stored: ReceiverAuth) -> None:
    """A new key pair signs at once; the old public key stays published for KEY_OVERLAP."""
    now = timezone.now()
    if stored.public_jwk:
        stored.previous_public_jwk, stored.previous_retires_at = stored.public_jwk, now + KEY_OVERLAP
    stored.private_key, stored.public_jwk = new_client_key(stored.key_algorithm or "RS384")
    stored.key_created_at = now


def rotate_client_key(webhook: Webhook, actor: Actor = SYSTEM_ACTOR) -> ReceiverAuth:
    """Replace the webhook's private_key_jwt key pair (the old public key stays published for a day)."""
    stored = receiver_auth_of(webhook)
    if stored.method != ReceiverAuth.Method.OAUTH2_JWT:
        raise ReceiverAuthInvalid({"receiver_auth": "only a webhook using private_key_jwt has a key to rotate"})
    _replace_key(stored)
    with transaction.atomic():
        stored.save()
        Webhook.objects.filter(pk=webhook.pk).update(keys_version=F("keys_version") + 1)
        record_audit(
            actor,
            "webhook.receiver_key_rotated",
            target=webhook,
            environment=webhook.environment,
            details={"kid": stored.kid, "previous_kid": stored.previous_public_jwk.get("kid", "")},
        )
    webhook.refresh_from_db(fields=["keys_version"])
    return stored


# --- Mutual TLS and the receiver's own CAs ---------------------------------------------------------------------


def _save(webhook: Webhook, stored: ReceiverAuth, changed: list[str], actor: Actor) -> None:
    stored.updated_at = timezone.now()
    with transaction.atomic():
        stored.save()
        Webhook.objects.filter(pk=webhook.pk).update(keys_version=F("keys_version") + 1)
        record_audit(
            actor, "webhook.receiver_tls_changed", target=webhook, environment=webhook.environment,
            details={"changed": changed},
        )  # fmt: skip
    webhook.refresh_from_db(fields=["keys_version"])


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()[:500]


def read_client_certificate(cert_pem: str, key_pem: str) -> tuple[x509.Certificate, str]:
    """The certificate (first of the chain) and the key as PKCS#8 PEM, if they hold together; else
    ReceiverAuthInvalid saying why."""
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError:
        raise ReceiverAuthInvalid({"client_cert": "not a PEM certificate (-----BEGIN CERTIFICATE-----)"}) from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ReceiverAuthInvalid(
            {"client_key": "not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)"}
        ) from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != chain[0].public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise ReceiverAuthInvalid({"client_key": "this key does not belong to the certificate"})
    if chain[0].not_valid_after_utc <= timezone.now():
        raise ReceiverAuthInvalid(
            {"client_cert": f"the certificate expired on {chain[0].not_valid_after_utc:%Y-%m-%d}"}
        )
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return chain[0], pkcs8


def new_client_csr(webhook: Webhook, common_name: str, actor: Actor = SYSTEM_ACTOR) -> str:
    """Make a key (ECDSA P-256, kept encrypted) and a certificate signing request for it: whoever issues the
    receiver's client certificates signs the CSR, and the certificate is uploaded without a key."""
    common_name = common_name.strip()
    if not common_name or len(common_name) > 64:
        raise ReceiverAuthInvalid({"client_csr": "a common name of 1 to 64 characters (e.g. the portal's host name)"})
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    stored = receiver_auth_of(webhook)
    stored.pending_csr = csr.public_bytes(serialization.Encoding.PEM).decode()
    stored.pending_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    _save(webhook, stored, ["key and certificate signing request generated"], actor)
    return stored.pending_csr


def set_client_certificate(webhook: Webhook, cert_pem: str, key_pem: str = "", actor: Actor = SYSTEM_ACTOR) -> None:
    """Present this certificate (with its key, stored encrypted) to the receiver and its token endpoint. Without
    `key_pem`, the key made with `new_client_csr` is the certificate's key."""
    stored = receiver_auth_of(webhook)
    if not key_pem and not stored.pending_key:
        raise ReceiverAuthInvalid({"client_key": "upload the certificate's key, or generate a key and CSR first"})
    certificate, pkcs8 = read_client_certificate(cert_pem, key_pem or stored.pending_key)
    if not key_pem:
        stored.pending_key = stored.pending_csr = ""
    change = "client certificate replaced" if stored.client_cert else "client certificate added"
    stored.client_cert, stored.client_key = cert_pem.strip() + "\n", pkcs8
    stored.cert_subject, stored.cert_issuer = _name(certificate.subject), _name(certificate.issuer)
    stored.cert_not_after = certificate.not_valid_after_utc
    _save(webhook, stored, [change], actor)


def remove_client_certificate(webhook: Webhook, actor: Actor = SYSTEM_ACTOR) -> None:
    stored = receiver_auth_of(webhook)
    if not stored.client_cert:
        return
    stored.client_cert = stored.client_key = stored.cert_subject = stored.cert_issuer = ""
    stored.cert_not_after = None
    _save(webhook, stored, ["client certificate removed"], actor)


def set_ca_bundle(webhook: Webhook, pem: str, actor: Actor = SYSTEM_ACTOR) -> int:
    """Trust these CAs (beside the system roots) for this webhook's receiver; '' trusts the system roots only.
    Returns how many certificates the bundle holds."""
    certificates: list[x509.Certificate] = []
    if pem.strip():
        try:
            certificates = x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            raise ReceiverAuthInvalid({"ca_bundle": "not PEM certificates (-----BEGIN CERTIFICATE-----)"}) from None
    stored = receiver_auth_of(webhook)
    bundle = pem.strip() + "\n" if certificates else ""
    if bundle != stored.ca_bundle:
        stored.ca_bundle = bundle
        _save(
            webhook,
            stored,
            [f"CA bundle set ({len(certificates)} certificates)" if bundle else "CA bundle removed"],
            actor,
        )
    return len(certificates)


# --- What commands and pages show: never a secret or a private key ---------------------------------------------


def describe_receiver_auth(webhook: Webhook) -> dict:
    """The webhook's receiver authentication as `--json` shows it: settings and public halves only."""
    stored = ReceiverAuth.objects.filter(webhook=webhook).first()
    if stored is None:
        return {"method": ReceiverAuth.Method.NONE}
    described: dict = {"method": stored.method}
    if stored.uses_oauth:
        described |= {"token_url": stored.token_url, "client_id": stored.client_id, "scope": stored.scope}
        if stored.resource:
            described["resource"] = stored.resource
    if stored.method == ReceiverAuth.Method.OAUTH2_SECRET:
        described["client_auth"] = stored.secret_method
    if stored.method == ReceiverAuth.Method.OAUTH2_JWT:
        described |= {"key_algorithm": stored.key_algorithm, "kid": stored.kid, "public_jwk": stored.public_jwk}
    if stored.client_cert:
        described["client_certificate"] = {
            "subject": stored.cert_subject,
            "issuer": stored.cert_issuer,
            "not_after": stored.cert_not_after.isoformat() if stored.cert_not_after else None,
        }
    if stored.pending_csr:
        described["client_csr"] = stored.pending_csr
    if stored.ca_bundle:
        described["ca_bundle_certificates"] = stored.ca_bundle.count("BEGIN CERTIFICATE")
    return described


def receiver_auth_context(webhook: Webhook) -> dict:
    """What the webhook page's receiver authentication section shows (public halves only)."""
    stored = receiver_auth_of(webhook)
    return {"receiver_auth": stored, "receiver_public_jwk": json.dumps(stored.public_jwk) if stored.public_jwk else ""}
