"""People and sign-in: second factors, sign-in attempts, open sessions and invitations.

Models hold data; the rules live in the modules beside this one (`factors.py`, `sign_in.py`,
`sessions.py`, `invitations.py`, `directory.py`).
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from credentials.fields import EncryptedTextField


class TotpFactor(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (TOTP, RFC 6238). The shared key is kept encrypted at rest, unlike django-otp's own
    TOTPDevice, which stores it in clear: that is why the portal has its own device model on django-otp's base."""

    key = EncryptedTextField(reported_as=("totp_factors", "authenticator keys"))  # hex, 20 random bytes
    last_t = models.BigIntegerField(default=-1)  # a code is accepted once: the next must be of a later step

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        token = str(token).strip().replace(" ", "")
        if not (token.isdigit() and len(token) == 6):
            self.throttle_increment()
            return False
        totp = TOTP(bytes.fromhex(self.key), step=30, t0=0, digits=6, drift=0)
        totp.time = time.time()
        if totp.verify(int(token), tolerance=1, min_t=self.last_t + 1):
            self.last_t = totp.t()
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment()
        return False

    def get_throttle_factor(self) -> int:
        return 1


class RecoveryCodes(ThrottlingMixin, Device):
    """One person's set of single-use recovery codes, kept as SHA-256 hashes (they are random, 50 bits each)."""

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        used = self.codes.filter(code_hash=hash_recovery_code(str(token))).first()
        if used is None:
            self.throttle_increment()
            return False
        used.delete()
        self.throttle_reset()
        return True

    def get_throttle_factor(self) -> int:
        return 1


class RecoveryCode(models.Model):
    device = models.ForeignKey(RecoveryCodes, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64, db_index=True)


class Passkey(TimestampMixin, Device):
    """A passkey (WebAuthn credential) the person registered and named: a second factor, like the app.

    The public key is public, so it is kept as it is; what proves the person is the private key, which never
    leaves their authenticator. django-otp's `Device` gives it a name, an owner and a place in the session
    (`django_otp.login`); the ceremonies are in `people/passkeys.py`, on py_webauthn.
    """

    credential_id = models.CharField(max_length=1400, unique=True)  # base64url; WebAuthn allows 1023 bytes
    public_key = models.BinaryField()  # COSE_Key, as the authenticator gave it
    sign_count = models.PositiveBigIntegerField(default=0)  # the authenticator's counter: it must only grow
    user_handle = models.CharField(max_length=64)  # base64url of random bytes: WebAuthn's user.id, not the pk
    transports = models.JSONField(default=list)  # hints for the browser ("internal", "usb", ...)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_passkey_name_per_person")]


class SignInAttempt(models.Model):
    """One sign-in with a password, good or bad: what the person sees on their security page, and what the
    sign-in throttle counts (failures only)."""

    username = models.CharField(max_length=150, db_index=True)  # as typed, lower-cased
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    succeeded = models.BooleanField()

    class Meta:
        indexes = [
            models.Index(fields=["ip", "at"], name="sign_in_ip_at"),
            models.Index(fields=["username", "ip", "at"], name="sign_in_account_ip_at"),
            # A person's latest (their security page, and what pruning keeps).
            models.Index(fields=["username", "-at"], name="sign_in_account_newest"),
        ]


class OpenSession(models.Model):
    """A signed-in browser: listed on its person's security page so they can end it from another."""

    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="open_sessions")
    started_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]


class Invitation(models.Model):
    """A one-time link by e-mail to join the portal; only the hash of its token is kept."""

    email = models.EmailField()
    username = models.CharField(max_length=150)
    token_hash = models.CharField(max_length=64, unique=True)
    # Roles given on acceptance: {"admin": true} or {"environment slug": "program_director" | "viewer"}.
    roles = models.JSONField(default=dict)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)


class FailureTally(models.Model):
    """How many failures of one kind (`action`) one label (an account) had from one address in one window.

    The audit trail is append-only, so it cannot hold a growing count: it gets a row at the 1st, 10th,
    100th... failure of a window, each with the count so far, and this row holds the exact count.
    """

    action = models.CharField(max_length=64)
    label = models.CharField(max_length=255)
    ip = models.GenericIPAddressField(null=True, blank=True)
    window_start = models.DateTimeField(db_index=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["action", "label", "ip", "window_start"], name="one_tally_per_window", nulls_distinct=False
            )
        ]


def hash_recovery_code(code: str) -> str:
    """How a recovery code is kept: SHA-256 of its normalised form (case, spaces and dashes do not count)."""
    normalised = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()
