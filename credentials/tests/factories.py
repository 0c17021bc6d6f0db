"""Clients and credentials for tests."""

import itertools
from urllib.parse import urlencode

from django.db import connection

from credentials.services import create_client, create_credential

_counter = itertools.count(1)
ALL_PATIENT_SCOPES = ["patients:read", "patients:write"]


def make_client(environment, *, scopes=None, name: str | None = None):
    return create_client(environment, name or f"App {next(_counter)}", scopes or ALL_PATIENT_SCOPES)


def make_credential(client, *, name: str = "Primary", expires_at=None):
    """Return (credential, secret)."""
    return create_credential(client, name, expires_at=expires_at)


def form_post(client, path: str, data: dict, **extra):
    """POST application/x-www-form-urlencoded, as OAuth clients do (the test client defaults to multipart)."""
    return client.post(path, urlencode(data, doseq=True), content_type="application/x-www-form-urlencoded", **extra)


def stored_secret(credential) -> str:
    """The credential's secret as its column holds it (the model's field decrypts on read)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM credentials_credential WHERE id = %s", [credential.pk])
        return cursor.fetchone()[0]
