"""Clients, their credentials (client secrets), the access tokens they obtain, and failed authentications.

No plain secret is stored: credentials keep a SHA-256 digest for authentication
and a Fernet-encrypted copy for signing webhooks; access tokens keep a digest only.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .fields import EncryptedTextField


class Client(models.Model):
    """An app or integration allowed into one environment, within its scopes."""

    environment = models.ForeignKey("environments.Environment", on_delete=models.PROTECT, related_name="clients")
    name = models.CharField(max_length=100)
    client_id = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # A disabled client obtains no token with any of its credentials; its issued tokens were revoked.
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="unique_client_name")]

    def __str__(self) -> str:
        return self.name


class Credential(models.Model):
    """One client secret. Active at once; may expire; may be invalidated (who, when, why kept)."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        INVALIDATED = "invalidated", "Invalidated"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="credentials")
    name = models.CharField(max_length=100)
    # The first characters of the secret, so people can tell credentials apart; not enough to use.
    hint = models.CharField(max_length=16)
    secret_digest = models.CharField(max_length=64, unique=True)
    secret = EncryptedTextField(db_column="secret_encrypted", reported_as=("credentials", "of credentials"))
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    invalidated_at = models.DateTimeField(null=True, blank=True)
    invalidated_by = models.CharField(max_length=255, blank=True)
    invalidation_reason = models.CharField(max_length=500, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["client__name", "-created_at"]

    def __repr__(self) -> str:
        # Never the digest or the encrypted secret: reprs end up in logs and error reports.
        return f"<Credential {self.id} {self.name!r} of {self.client_id}>"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    def state_at(self, moment) -> str:
        if self.invalidated_at is not None:
            return self.State.INVALIDATED
        if self.expires_at is not None and self.expires_at <= moment:
            return self.State.EXPIRED
        return self.State.ACTIVE

    @property
    def state(self) -> str:
        return self.state_at(timezone.now())

    @property
    def is_active(self) -> bool:
        return self.state == self.State.ACTIVE


class AccessToken(models.Model):
    """A bearer token issued by exchanging a credential; the access history."""

    token_digest = models.CharField(max_length=64, unique=True)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="access_tokens")
    credential = models.ForeignKey(Credential, on_delete=models.PROTECT, related_name="access_tokens")
    environment = models.ForeignKey("environments.Environment", on_delete=models.PROTECT, related_name="+")
    scopes = models.JSONField(default=list)
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    issued_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        indexes = [
            models.Index(fields=["client", "-issued_at"], name="token_by_client"),
            models.Index(fields=["environment", "issued_at"], name="token_by_environment"),
        ]

    def __repr__(self) -> str:
        return f"<AccessToken {self.pk} of {self.client_id}>"

    def __str__(self) -> str:
        return f"token {self.pk} issued {self.issued_at:%Y-%m-%d %H:%M}"

    def state_at(self, moment) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= moment:
            return "expired"
        return "active"


class AuthFailure(models.Model):
    """A failed client authentication at the token endpoint: the throttle's memory and the health count."""

    class Reason(models.TextChoices):
        UNKNOWN_CLIENT = "unknown_client", "Unknown client"
        BAD_SECRET = "bad_secret", "Wrong secret"
        INACTIVE_CREDENTIAL = "inactive_credential", "Expired or invalidated credential"
        DISABLED_CLIENT = "disabled_client", "Disabled client"
        THROTTLED = "throttled", "Throttled"

    client_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    at = models.DateTimeField(default=timezone.now)
    environment = models.ForeignKey(
        "environments.Environment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["client_id", "at"], name="failure_by_client"),
            models.Index(fields=["ip", "at"], name="failure_by_ip"),
            models.Index(fields=["environment", "at"], name="failure_by_environment"),
            models.Index(fields=["at"], name="failure_at"),  # pruning, oldest first
        ]

    def __str__(self) -> str:
        return f"{self.reason} for {self.client_id or '?'} from {self.ip}"
