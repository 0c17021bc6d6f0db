"""Finding environments, clients and credentials by the names ops type, with one-line errors."""

import uuid

from django.core.management.base import CommandError

from environments.models import Environment

from ..models import Client, Credential


def environment(slug: str) -> Environment:
    found = Environment.objects.select_related("published_version").filter(slug=slug).first()
    if found is None:
        raise CommandError(f"unknown environment: {slug}")
    return found


def client(client_id: str) -> Client:
    found = Client.objects.select_related("environment").filter(client_id=client_id).first()
    if found is None:
        raise CommandError(f"unknown client_id: {client_id}")
    return found


def credential(credential_id: str) -> Credential:
    try:
        key = uuid.UUID(credential_id)
    except ValueError:
        raise CommandError(f"not a credential id (a UUID, see list_credentials): {credential_id}") from None
    found = Credential.objects.select_related("client__environment").filter(pk=key).first()
    if found is None:
        raise CommandError(f"unknown credential: {credential_id}")
    return found


def describe(item: Credential) -> dict:
    """A credential as `--json` output shows it: never the secret, its digest or its encrypted copy."""
    return {
        "id": str(item.id),
        "name": item.name,
        "hint": item.hint,
        "client": item.client.name,
        "client_id": item.client.client_id,
        "environment": item.client.environment.slug,
        "state": item.state,
        "created_at": item.created_at.isoformat(),
        "expires_at": item.expires_at.isoformat() if item.expires_at else None,
        "last_used_at": item.last_used_at.isoformat() if item.last_used_at else None,
        "last_used_ip": item.last_used_ip,
        "invalidated_at": item.invalidated_at.isoformat() if item.invalidated_at else None,
        "invalidated_by": item.invalidated_by or None,
        "invalidation_reason": item.invalidation_reason or None,
    }
