"""Clients and credentials: create, rename, invalidate, revoke. Views, commands and the API all call these."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from environments.audit import audited, record_audit
from environments.models import Environment
from portal.actor import SYSTEM_ACTOR, Actor
from portal.bindings import named_functions
from portal.inputs import length_problem, text_problem

from . import secrets
from .models import AccessToken, Client, Credential
from .scopes import unknown_scopes


class CredentialError(Exception):
    """A user error about clients or credentials, with a message fit to show."""


class CredentialInUse(CredentialError):
    """The credential signs webhooks; it must be removed from them first (rule 6)."""

    def __init__(self, credential: Credential, holders: list[tuple[str, str]]):
        self.holders = holders
        names = ", ".join(f"“{name}”" for name, _ in holders)
        super().__init__(
            f"“{credential.name}” is used to sign webhook {names}; remove it from "
            f"{'that webhook' if len(holders) == 1 else 'those webhooks'} before invalidating it"
        )


def credential_in_use_by(credential: Credential) -> list[tuple[str, str]]:
    """(name, page path) of everything that uses the credential (and so blocks invalidating it).

    The checks are named in `settings.CREDENTIAL_IN_USE_CHECKS` (the webhooks app's: which webhooks sign
    with it), not registered at start-up, so that a reader can follow this to them and this app imports
    none of those that use it.
    """
    return [holder for check in named_functions(settings.CREDENTIAL_IN_USE_CHECKS) for holder in check(credential)]


def _name(name: str, model, what: str) -> str:
    """The name, trimmed, if it is one a `what` can have; else CredentialError saying why."""
    name = name.strip()
    if not name:
        raise CredentialError(f"a {what} needs a name")
    problem = length_problem(name, model, "name")
    if problem:
        raise CredentialError(f"the {what} name {problem}")
    return name


def _refuse_taken_name(environment: Environment, name: str, client: Client | None = None) -> None:
    """CredentialError if another client of the environment has this name in any case: "Lab app" and
    "lab app" side by side would be told apart by nobody."""
    others = Client.objects.filter(environment=environment, name__iexact=name).exclude(pk=getattr(client, "pk", None))
    taken = others.values_list("name", flat=True).first()
    if taken:
        raise CredentialError(f"{environment.name} already has a client named “{taken}”")


def _reason(reason: str, model, field: str) -> str:
    """The reason, trimmed, if its column can hold it; else CredentialError saying why."""
    reason = reason.strip()
    if problem := length_problem(reason, model, field):
        raise CredentialError(f"the reason {problem}")
    return reason


def create_client(environment: Environment, name: str, scopes: list[str], *, actor: Actor = SYSTEM_ACTOR) -> Client:
    """Create a client of one environment with the given scopes (at least one, all known)."""
    name = _name(name, Client, "client")
    scopes = sorted(set(scopes))
    if not scopes:
        raise CredentialError("choose at least one scope: a client with no scope can read nothing")
    unknown = unknown_scopes(environment, scopes)
    if unknown:
        raise CredentialError(f"unknown scope(s) for {environment.slug}: {', '.join(unknown)}")
    _refuse_taken_name(environment, name)
    try:
        with transaction.atomic():
            client = Client.objects.create(
                environment=environment,
                name=name,
                client_id=secrets.new_client_id(),
                scopes=scopes,
                created_by=actor.user,
            )
            record_audit(
                actor,
                "client.created",
                target=client,
                environment=environment,
                details={"client_id": client.client_id, "scopes": scopes},
            )
    except IntegrityError:
        raise CredentialError(f"{environment.name} already has a client named “{name}”") from None
    return client


def rename_client(client: Client, name: str, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Give a client a new name (unique in its environment); its client_id and credentials do not change."""
    name = _name(name, Client, "client")
    _refuse_taken_name(client.environment, name, client)
    old = client.name
    try:
        with audited(
            actor, "client.renamed", target=client, environment=client.environment, details={"from": old, "to": name}
        ):
            client.name = name
            client.save(update_fields=["name"])
    except IntegrityError:
        client.name = old
        raise CredentialError(f"{client.environment.name} already has a client named “{name}”") from None


def set_client_scopes(
    client: Client,
    scopes: list[str],
    *,
    revoke_live_tokens: bool = False,
    actor: Actor = SYSTEM_ACTOR,
) -> int:
    """Change what the client may ask for. Tokens already issued keep the scopes they were issued with until
    they expire, unless `revoke_live_tokens`: then they end now. Returns how many tokens were revoked."""
    scopes = sorted(set(scopes))
    if not scopes:
        raise CredentialError("choose at least one scope: a client with no scope can read nothing")
    unknown = unknown_scopes(client.environment, scopes)
    if unknown:
        raise CredentialError(f"unknown scope(s) for {client.environment.slug}: {', '.join(unknown)}")
    before = sorted(client.scopes)
    with transaction.atomic():
        client.scopes = scopes
        client.save(update_fields=["scopes"])
        record_audit(
            actor,
            "client.scopes_changed",
            target=client,
            environment=client.environment,
            details={"from": before, "to": scopes, "ended_issued_access": revoke_live_tokens},
        )
        if not revoke_live_tokens:
            return 0
        return revoke_tokens(client=client, reason="scopes changed", actor=actor)


def disable_client(client: Client, *, actor: Actor = SYSTEM_ACTOR) -> int:
    """Cut a client off: none of its credentials obtains a token, and every token it holds ends now.
    Returns how many tokens were revoked."""
    if client.disabled_at is not None:
        raise CredentialError(f"“{client.name}” is already disabled")
    with transaction.atomic():
        client.disabled_at = timezone.now()
        client.save(update_fields=["disabled_at"])
        # Recorded before the revocation, so the trail reads "disabled", then "tokens revoked".
        record_audit(actor, "client.disabled", target=client, environment=client.environment)
        return revoke_tokens(client=client, reason="client disabled", actor=actor)


def enable_client(client: Client, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Let a disabled client's active credentials obtain tokens again."""
    if client.disabled_at is None:
        raise CredentialError(f"“{client.name}” is not disabled")
    with audited(actor, "client.enabled", target=client, environment=client.environment):
        client.disabled_at = None
        client.save(update_fields=["disabled_at"])


def client_deletion_problem(client: Client) -> str | None:
    """Why the client cannot be deleted, or None. Only a client never used may go: its access history stays."""
    if client.access_tokens.exists():
        return "it has obtained tokens, and its access history is kept: disable it instead"
    holders = [holder for credential in client.credentials.all() for holder in credential_in_use_by(credential)]
    if holders:
        return f"its credentials sign webhook “{holders[0][0]}”: disable it instead"
    return None


def delete_client(client: Client, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Delete a client that was never used, with its credentials (recorded in the audit log)."""
    problem = client_deletion_problem(client)
    if problem:
        raise CredentialError(f"“{client.name}” cannot be deleted: {problem}")
    with transaction.atomic():
        record_audit(
            actor,
            "client.deleted",
            target=client,
            environment=client.environment,
            details={"client_id": client.client_id, "credentials": [c.name for c in client.credentials.all()]},
        )
        client.credentials.all().delete()
        client.delete()


def create_credential(
    client: Client,
    name: str,
    *,
    expires_at: datetime.datetime | None = None,
    actor: Actor = SYSTEM_ACTOR,
) -> tuple[Credential, str]:
    """Generate a new client secret for `client`; return the credential and the secret.

    The secret exists in plain text only in the return value: show it once and drop it.
    """
    name = _name(name, Credential, "credential")
    if expires_at is not None and expires_at <= timezone.now():
        raise CredentialError("the expiry must be in the future")
    secret = secrets.new_client_secret()
    with transaction.atomic():
        credential = Credential.objects.create(
            client=client,
            name=name,
            hint=secret[:9],
            secret_digest=secrets.digest(secret),
            secret=secret,
            expires_at=expires_at,
            created_by=actor.user,
        )
        record_audit(
            actor,
            "credential.created",
            target=credential,
            environment=client.environment,
            details={"client_id": client.client_id, "expires_at": expires_at.isoformat() if expires_at else None},
        )
    return credential, secret


def rename_credential(credential: Credential, name: str, *, actor: Actor = SYSTEM_ACTOR) -> None:
    name = _name(name, Credential, "credential")
    old = credential.name
    environment = credential.client.environment
    with audited(
        actor, "credential.renamed", target=credential, environment=environment, details={"from": old, "to": name}
    ):
        credential.name = name
        credential.save(update_fields=["name"])


def invalidate_credential(credential: Credential, *, reason: str = "", actor: Actor = SYSTEM_ACTOR) -> None:
    """Stop the credential from obtaining new tokens, at once.

    Tokens it already obtained keep working until they expire, as in the
    reference product; `revoke_tokens` ends them too. Refused while a webhook
    signs with the credential.
    """
    reason = _reason(reason, Credential, "invalidation_reason")
    if credential.invalidated_at is not None:
        raise CredentialError(f"“{credential.name}” is already invalidated")
    holders = credential_in_use_by(credential)
    if holders:
        raise CredentialInUse(credential, holders)
    environment = credential.client.environment
    with audited(
        actor, "credential.invalidated", target=credential, environment=environment, details={"reason": reason}
    ):
        credential.invalidated_at = timezone.now()
        # A user by name; anything else (a command, a task) as "system", as it always has been.
        credential.invalidated_by = actor.user.get_username() if actor.user else "system"
        credential.invalidation_reason = reason
        credential.save(update_fields=["invalidated_at", "invalidated_by", "invalidation_reason"])


def revoke_tokens(
    *,
    credential: Credential | None = None,
    client: Client | None = None,
    reason: str = "",
    actor: Actor = SYSTEM_ACTOR,
) -> int:
    """Revoke, at once, every unexpired token issued to the credential (or to any credential of the client)."""
    if (credential is None) == (client is None):
        raise ValueError("pass exactly one of credential or client")
    reason = _reason(reason, AccessToken, "revoked_reason")
    target = credential or client
    environment = (credential.client if credential else client).environment
    now = timezone.now()
    tokens = AccessToken.objects.filter(revoked_at__isnull=True, expires_at__gt=now)
    tokens = tokens.filter(credential=credential) if credential else tokens.filter(client=client)
    with audited(actor, "tokens.revoked", target=target, environment=environment) as audit:
        count = tokens.update(revoked_at=now, revoked_reason=reason or "revoked by an administrator")
        audit.details = {"count": count, "reason": reason}
    return count


SORTS = {
    "client": ("client__name", "-created_at"),
    "name": ("name",),
    "created": ("created_at",),
    "last_used": ("last_used_at",),
    "expires": ("expires_at",),
}


def credentials_of(environment: Environment, *, search: str = "", sort: str = "") -> QuerySet[Credential]:
    """The environment's credentials for the list page and `list_credentials`: searchable, sortable.

    `sort` is a key of SORTS, with a leading "-" for descending.
    """
    if problem := text_problem(search):
        raise CredentialError(f"the search {problem}")
    credentials = Credential.objects.filter(client__environment=environment).select_related("client", "created_by")
    if search:
        credentials = credentials.filter(
            Q(name__icontains=search)
            | Q(client__name__icontains=search)
            | Q(client__client_id__icontains=search)
            | Q(hint__icontains=search)
        )
    descending = sort.startswith("-")
    fields = SORTS.get(sort.lstrip("-"), SORTS["client"])
    if descending:
        fields = tuple(f[1:] if f.startswith("-") else f"-{f}" for f in fields)
    return credentials.order_by(*fields, "id")
