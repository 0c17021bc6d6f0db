"""Configuring how a webhook authenticates to its receiver (issue 23): OAuth 2.0 client credentials.

Forms and commands call `set_receiver_auth`; sending reads the result through
`webhooks/delivery/authorization.py`. Secrets are written, never read back:
a change that leaves the secret empty keeps the stored one. Every change is
audited by what changed, never a value, and bumps the webhook's
`keys_version` so that workers reload the settings and fetch a new token.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

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
}


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
    if fields.secret_method not in ReceiverAuth.SecretMethod.values:
        errors["oauth_client_auth"] = f"choose {' or '.join(ReceiverAuth.SecretMethod.values)}"
    if fields.method == ReceiverAuth.Method.OAUTH2_SECRET and not (fields.client_secret or stored.client_secret):
        errors["oauth_client_secret"] = "the client secret the receiver gave is needed (read from a file)"  # noqa: S105
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
    changed = _changes(fields, stored)
    if not changed:
        return []
    for name in _SETTING_NAMES:
        setattr(stored, name, getattr(fields, name))
    if fields.client_secret:
        stored.client_secret = fields.client_secret
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
    )
