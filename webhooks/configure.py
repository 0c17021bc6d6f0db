"""Configuring webhooks: create, change, keys, delete. Views and commands both call these.

Pausing, resuming and the webhook's other states are in `lifecycle.py`. Every change leaves an audit
event. Validation lives here, once, and reports every problem at once, keyed by field, so a form and a
command say the same.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import ngettext

from credentials.models import Client, Credential
from environments.audit import audited, record_audit
from environments.models import Environment
from portal.actor import SYSTEM_ACTOR, Actor

from . import manual_sends, options
from .delivery import signing
from .delivery.outbound import InvalidDestination, check_url
from .models import SigningSecret, Webhook


class WebhookInvalid(ValueError):
    """The fields of a webhook do not hold; `errors` maps each field to a sentence."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


class WebhookError(ValueError):
    """An action on a webhook that cannot be done now, with the sentence saying why."""


class WebhookFields(options.OptionValues):
    """Everything a user sets on a webhook: what it receives, how it is signed, and its options.

    The options (`options.OptionValues`) are passed by name and are attributes;
    those not given take their defaults.
    """

    def __init__(
        self,
        name: str,
        url: str,
        event_types: list[str],
        security_method: str = Webhook.SecurityMethod.SIGNING_SECRET,
        signing_credential_ids: list[str] | None = None,
        client_id: str | None = None,
        **option_values: Any,
    ):
        unknown = set(option_values) - set(options.OPTION_NAMES)
        if unknown:
            raise TypeError(f"unknown webhook options: {', '.join(sorted(unknown))}")
        super().__init__(**option_values)
        self.name = name
        self.url = url
        self.event_types = list(event_types)
        self.security_method = security_method
        self.signing_credential_ids = list(signing_credential_ids or [])
        # The API client it serves, by its OAuth client_id (None: none); `client` is that client once checked.
        self.client_id = client_id or None
        self.client: Client | None = None


def selectable_credentials(environment: Environment):
    """Credentials that may sign this environment's webhooks: active ones of its clients."""
    now = timezone.now()
    candidates = Credential.objects.filter(client__environment=environment, invalidated_at__isnull=True)
    return [credential for credential in candidates.select_related("client") if credential.state_at(now) == "active"]


def _name_taken(environment: Environment, name: str, webhook: Webhook | None) -> str | None:
    """The name of another webhook of the environment that `name` matches, ignoring case: "Lab receiver" and
    "lab receiver" side by side would be told apart by nobody."""
    others = Webhook.objects.filter(environment=environment, name__iexact=name).exclude(pk=getattr(webhook, "pk", None))
    return others.values_list("name", flat=True).first()


def _validate(environment: Environment, fields: WebhookFields, webhook: Webhook | None = None) -> list[Credential]:
    errors: dict[str, str] = {}
    fields.name = fields.name.strip()
    if not fields.name:
        errors["name"] = "a webhook needs a name"
    elif len(fields.name) > 100:
        errors["name"] = "at most 100 characters"
    elif taken := _name_taken(environment, fields.name, webhook):
        errors["name"] = f"{environment.name} already has a webhook named “{taken}”"
    fields.url = fields.url.strip()
    if len(fields.url) > 2000:
        errors["url"] = "at most 2000 characters"
    else:
        try:
            check_url(fields.url)
        except InvalidDestination as error:
            errors["url"] = str(error)
    fields.event_types = sorted(set(fields.event_types))
    known = set(environment.event_types)
    unknown = [name for name in fields.event_types if name not in known]
    if not fields.event_types:
        errors["event_types"] = "choose at least one event type: a webhook receives only what it opts into"
    elif unknown:
        errors["event_types"] = f"not event types of {environment.name}'s published schema: {', '.join(unknown)}"
    credentials: list[Credential] = []
    if fields.security_method not in Webhook.SecurityMethod.values:
        errors["security_method"] = "choose a signing secret, credentials or an Ed25519 key pair"
    elif fields.security_method == Webhook.SecurityMethod.CREDENTIALS:
        selectable = {str(credential.id): credential for credential in selectable_credentials(environment)}
        chosen = sorted(set(map(str, fields.signing_credential_ids)))
        invalid = [credential_id for credential_id in chosen if credential_id not in selectable]
        if not chosen:
            errors["signing_credentials"] = "choose at least one credential to sign with"
        elif invalid:
            errors["signing_credentials"] = "only active credentials of this environment's clients can sign"
        credentials = [selectable[credential_id] for credential_id in chosen if credential_id in selectable]
    fields.client, problem = _served_client(environment, fields.client_id)
    if problem:
        errors["client"] = problem
    for option in options.OPTIONS:
        stored = getattr(webhook, option.name) if webhook is not None else None
        setattr(fields, option.name, option.keep(getattr(fields, option.name), stored))
    errors.update(options.problems(fields))
    if "payload_fields" not in errors:
        problem = _payload_fields_problem(environment, fields.payload_fields)
        if problem:
            errors["payload_fields"] = problem
    if errors:
        raise WebhookInvalid(errors)
    return credentials


def _served_client(environment: Environment, client_id: str | None) -> tuple[Client | None, str | None]:
    """The client a webhook serves, by its client_id: one of the webhook's own environment, or a problem."""
    if not client_id:
        return None, None
    client = Client.objects.filter(environment=environment, client_id=client_id).first()
    if client is None:
        return None, f"{environment.name} has no API client “{client_id[:64]}”"
    return client, None


def _settings_of(webhook: Webhook) -> dict:
    """What an audit event records of a webhook's configuration (no keys)."""
    return {
        "name": webhook.name,
        "url": webhook.url,
        "event_types": list(webhook.event_types),
        "security_method": webhook.security_method,
        "client": webhook.client.client_id if webhook.client else None,
        **options.audit_view(webhook),
    }


def _payload_fields_problem(environment: Environment, chosen: dict[str, list[str]]) -> str | None:
    """Chosen payload fields must be fields of the environment's published data types."""
    data_types = environment.schema.get("data_types", {})
    for data_type, names in chosen.items():
        if data_type not in data_types:
            return f"“{data_type[:60]}” is not a data type of {environment.name}"
        unknown = sorted(set(names) - set(data_types[data_type].get("fields", {})))
        if unknown:
            return f"{data_type} has no field {', '.join(unknown[:5])}"
    return None


def _names(credentials) -> list[str]:
    """Credentials as people know them in the audit trail: client and credential name, never a secret."""
    return sorted(f"{credential.client.name}: {credential.name}" for credential in credentials)


def _apply(webhook: Webhook, fields: WebhookFields) -> None:
    webhook.name = fields.name
    webhook.url = fields.url
    webhook.event_types = fields.event_types
    webhook.security_method = fields.security_method
    webhook.client = fields.client
    for name in options.OPTION_NAMES:
        setattr(webhook, name, getattr(fields, name))


def _new_secret(webhook: Webhook) -> str:
    secret = signing.new_signing_secret()
    SigningSecret.objects.create(webhook=webhook, hint=secret[:10], secret=secret)
    return secret


def _new_key_pair(webhook: Webhook) -> SigningSecret:
    private, public = signing.new_key_pair()
    return SigningSecret.objects.create(
        webhook=webhook,
        algorithm=SigningSecret.Algorithm.ED25519,
        hint=public[:12],
        secret=private,
        public_key=public,
    )


def _webhooks(count: int) -> str:
    return ngettext("%(count)d webhook", "%(count)d webhooks", count) % {"count": count}


def create_webhook(
    environment: Environment, fields: WebhookFields, *, actor: Actor = SYSTEM_ACTOR
) -> tuple[Webhook, str | None]:
    """Create a webhook; return it and, for the signing-secret method, its `whsec_` secret (show it once)."""
    credentials = _validate(environment, fields)
    if environment.webhooks.count() >= settings.WEBHOOKS_PER_ENVIRONMENT_MAX:
        raise WebhookInvalid(
            {"name": f"{environment.name} has {_webhooks(settings.WEBHOOKS_PER_ENVIRONMENT_MAX)}, the most allowed"}
        )
    webhook = Webhook(environment=environment, created_by=actor.user)
    _apply(webhook, fields)
    if verification_required(environment):
        webhook.state = Webhook.State.UNVERIFIED  # nothing is sent until the receiver proves the URL
    secret = None
    try:
        with transaction.atomic():
            webhook.save()
            webhook.signing_credentials.set(credentials)
            # Every webhook has a secret and a key pair, so switching method later never leaves it unsigned.
            secret = _new_secret(webhook)
            _new_key_pair(webhook)
            record_audit(
                actor,
                "webhook.created",
                target=webhook,
                environment=environment,
                details={
                    **_settings_of(webhook),
                    "signing_credential_ids": [str(c.id) for c in credentials],
                    "signing_credentials": _names(credentials),
                    "verification": "required" if webhook.state == Webhook.State.UNVERIFIED else "not required",
                },
            )
            if webhook.state == Webhook.State.UNVERIFIED:
                # Recorded with the webhook, so its page says a verification is under way from the start.
                manual_sends.ask_for_verification(webhook, requested_by=actor.label, user=actor.user)
    except IntegrityError:
        raise WebhookInvalid({"name": f"{environment.name} already has a webhook named “{fields.name}”"}) from None
    return webhook, secret


def update_webhook(webhook: Webhook, fields: WebhookFields, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Change a webhook's settings. Event types added later apply to events from now on."""
    credentials = _validate(webhook.environment, fields, webhook)
    before = _settings_of(webhook)
    before_credentials = sorted(str(pk) for pk in webhook.signing_credentials.values_list("pk", flat=True))
    before_names = _names(webhook.signing_credentials.select_related("client"))
    before_values = {name: copy.copy(getattr(webhook, name)) for name in options.OPTION_NAMES}
    _apply(webhook, fields)
    after = _settings_of(webhook)
    after_credentials = sorted(str(c.id) for c in credentials)
    changes = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
    for option in options.OPTIONS:
        hidden = option.hidden_changes and option.hidden_changes(
            before_values[option.name], getattr(fields, option.name)
        )
        if hidden:
            changes[f"{option.name}_changed"] = hidden
    if "url" in changes and verification_required(webhook.environment):
        # A new URL is a new receiver: it proves itself before data flows there.
        webhook.state, webhook.verified_at, webhook.verification_waived = Webhook.State.UNVERIFIED, None, ""
        changes["verification"] = {"from": "done", "to": "required again: the URL changed"}
    if before_credentials != after_credentials:
        changes["signing_credential_ids"] = {"from": before_credentials, "to": after_credentials}
        changes["signing_credentials"] = {"from": before_names, "to": _names(credentials)}
    if not changes:
        return
    webhook.keys_version += 1  # the signing method or its credentials may have changed: workers reload keys
    try:
        with transaction.atomic():
            webhook.save()
            webhook.signing_credentials.set(credentials)
            if webhook.security_method == Webhook.SecurityMethod.ED25519 and not signing_keys_of(webhook):
                _new_key_pair(webhook)  # made before key pairs existed
            record_audit(
                actor, "webhook.updated", target=webhook, environment=webhook.environment, details={"changes": changes}
            )
            if "verification" in changes:
                manual_sends.ask_for_verification(webhook, requested_by=actor.label, user=actor.user)
    except IntegrityError:
        raise WebhookInvalid({"name": f"a webhook named “{fields.name}” already exists"}) from None


def set_signing_credentials(webhook: Webhook, credential_ids: list[str], *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Replace the credentials a webhook signs with (switching it to the credentials method)."""
    fields = fields_of(webhook)
    fields.security_method = Webhook.SecurityMethod.CREDENTIALS
    fields.signing_credential_ids = credential_ids
    update_webhook(webhook, fields, actor=actor)


def fields_of(webhook: Webhook) -> WebhookFields:
    """The current settings of a webhook, as the fields to edit."""
    return WebhookFields(
        name=webhook.name,
        url=webhook.url,
        event_types=list(webhook.event_types),
        security_method=webhook.security_method,
        signing_credential_ids=[str(pk) for pk in webhook.signing_credentials.values_list("pk", flat=True)],
        client_id=webhook.client.client_id if webhook.client else None,
        **{name: copy.copy(getattr(webhook, name)) for name in options.OPTION_NAMES},
    )


def rotate_signing_secret(
    webhook: Webhook,
    *,
    grace: datetime.timedelta | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> str:
    """Make a new signing key of the webhook's method (a `whsec_` secret, or an Ed25519 pair); the current
    ones keep signing for `grace` (0 to 7 days), then stop. Returns the new secret, or the new public key."""
    if grace is None:
        grace = datetime.timedelta(hours=settings.WEBHOOK_SECRET_GRACE_HOURS)
    if not datetime.timedelta(0) <= grace <= datetime.timedelta(days=7):
        raise WebhookError("the grace period must be between 0 and 7 days")
    now = timezone.now()
    retires_at = now + grace
    algorithm = webhook.key_algorithm
    details = {
        "algorithm": algorithm,
        "old_keys_sign_until": retires_at.isoformat(),
        "grace_hours": grace.total_seconds() / 3600,
    }
    with audited(actor, "webhook.key_rotated", target=webhook, environment=webhook.environment, details=details):
        Webhook.objects.select_for_update().get(pk=webhook.pk)
        keys = webhook.signing_secrets.filter(algorithm=algorithm)
        keys.filter(retires_at__isnull=True).update(retires_at=retires_at)
        keys.filter(retires_at__gt=retires_at).update(retires_at=retires_at)
        pairs = algorithm == SigningSecret.Algorithm.ED25519
        secret = _new_key_pair(webhook).public_key if pairs else _new_secret(webhook)
        Webhook.objects.filter(pk=webhook.pk).update(keys_version=F("keys_version") + 1)
    return secret


def old_keys_signing(webhook: Webhook, moment: datetime.datetime | None = None) -> list[SigningSecret]:
    """The rotated-out keys of its method still signing in their grace period, newest first."""
    moment = moment or timezone.now()
    return [key for key in signing_secrets_in_use(webhook, moment) if key.retires_at is not None]


def stop_old_keys(webhook: Webhook, *, actor: Actor = SYSTEM_ACTOR) -> list[SigningSecret]:
    """End a rotation's grace period now, for a leak: only the current key signs from this moment on.

    Returns the keys that stopped. Refused when no old key is signing, or when no current key would be
    left to sign (the current one is never stopped here: rotate for that).
    """
    if webhook.security_method == Webhook.SecurityMethod.CREDENTIALS:
        raise WebhookError(f"{webhook.name} signs with credentials: remove the old credential from it instead")
    noun = webhook.key_noun
    now = timezone.now()
    with audited(actor, "webhook.old_keys_stopped", target=webhook, environment=webhook.environment) as audit:
        Webhook.objects.select_for_update().get(pk=webhook.pk)
        keys = webhook.signing_secrets.filter(algorithm=webhook.key_algorithm)
        stopping = list(keys.filter(retires_at__gt=now).order_by("-created_at"))
        if not stopping:
            raise WebhookError(f"no old {noun} of {webhook.name} is signing: there is nothing to stop")
        if not keys.filter(retires_at__isnull=True).exists():
            raise WebhookError(f"{webhook.name} has no current {noun} to sign with: rotate instead")
        keys.filter(pk__in=[key.pk for key in stopping]).update(retires_at=now)
        # Workers cache keys per version: the bump makes the next attempt sign without the old ones.
        Webhook.objects.filter(pk=webhook.pk).update(keys_version=F("keys_version") + 1)
        audit.details = {
            "algorithm": webhook.key_algorithm,
            "stopped": len(stopping),
            "created": [key.created_at.isoformat() for key in stopping],
            "would_have_signed_until": max(key.retires_at for key in stopping).isoformat(),
        }
    return stopping


def signing_keys_of(webhook: Webhook) -> list[SigningSecret]:
    """The keys of the webhook's own method (its `whsec_` secrets, or its Ed25519 pairs), newest first."""
    return list(webhook.signing_secrets.filter(algorithm=webhook.key_algorithm).order_by("-created_at"))


def signing_secrets_in_use(webhook: Webhook, moment: datetime.datetime | None = None) -> list[SigningSecret]:
    """The keys of its method signing now, newest first."""
    moment = moment or timezone.now()
    return [secret for secret in signing_keys_of(webhook) if secret.is_signing_at(moment)]


def verification_required(environment: Environment) -> bool:
    """Whether a new webhook (or a changed URL) in this environment must prove its receiver before data flows."""
    return environment.kind in settings.WEBHOOK_VERIFICATION_REQUIRED_KINDS


def delete_webhook(webhook: Webhook, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Delete a webhook with its history (kept in the audit log as the deletion event)."""
    with transaction.atomic():
        record_audit(
            actor, "webhook.deleted", target=webhook, environment=webhook.environment, details=_settings_of(webhook)
        )
        webhook.delete()


def webhooks_signing_with(credential: Credential) -> list[tuple[str, str]]:
    """(name, page path) of the webhooks that sign with this credential: they block its invalidation."""
    webhooks = Webhook.objects.filter(
        signing_credentials=credential, security_method=Webhook.SecurityMethod.CREDENTIALS
    ).select_related("environment")
    return [
        (webhook.name, reverse("webhook_detail", args=[webhook.environment.slug, webhook.pk])) for webhook in webhooks
    ]
