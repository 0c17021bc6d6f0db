"""Second factors: an authenticator app (TOTP), passkeys and single-use recovery codes, on django-otp's
device model.

django-otp keeps which factor verified a session (`django_otp.login`, `OTPMiddleware`); the portal's own
device models (`models.TotpFactor`, `models.Passkey`, `models.RecoveryCodes`) keep the TOTP key encrypted and
the recovery codes hashed, so nothing a database dump holds signs anybody in (a passkey's public key cannot).
Passkey ceremonies are in `passkeys.py`; what counts as a factor, and resetting them all, is here.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import django_otp
import segno
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django_otp.models import Device

from environments.audit import record_audit
from portal.actor import Actor

from .models import Passkey, RecoveryCode, RecoveryCodes, TotpFactor, hash_recovery_code
from .sessions import end_all_sessions

if TYPE_CHECKING:
    from django.contrib.auth.models import User

RECOVERY_CODE_COUNT = 10
MFA_SETTINGS = ("admins", "everyone", "off")


def mfa_required_for(user: User) -> bool:
    """Whether MFA_REQUIRED makes this person enrol a second factor before using the portal."""
    required = settings.MFA_REQUIRED
    return required == "everyone" or (required == "admins" and bool(user.is_superuser))


def has_second_factor(user: User) -> bool:
    """Whether the person has a confirmed authenticator app or a passkey."""
    return has_authenticator_app(user) or Passkey.objects.filter(user=user).exists()


def has_authenticator_app(user: User) -> bool:
    return TotpFactor.objects.filter(user=user, confirmed=True).exists()


def people_with_second_factor() -> set[int]:
    """The ids of everyone with a second factor (for the People page)."""
    with_app = TotpFactor.objects.filter(confirmed=True).values_list("user_id", flat=True)
    return set(with_app) | set(Passkey.objects.values_list("user_id", flat=True))


def recovery_codes_left(user: User) -> int:
    return RecoveryCode.objects.filter(device__user=user).count()


def pending_totp(user: User) -> TotpFactor:
    """The authenticator app being enrolled (unconfirmed), made with a new random key if there is none."""
    device = TotpFactor.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TotpFactor.objects.create(
            user=user, name="Authenticator app", confirmed=False, key=secrets.token_hex(20)
        )
    return device


def provisioning_uri(device: TotpFactor) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    import base64
    from urllib.parse import quote, urlencode

    secret = base64.b32encode(bytes.fromhex(device.key)).decode().rstrip("=")
    issuer = settings.OTP_TOTP_ISSUER
    label = quote(f"{issuer}:{device.user.get_username()}")
    return f"otpauth://totp/{label}?" + urlencode({"secret": secret, "issuer": issuer, "digits": 6, "period": 30})


def setup_key(device: TotpFactor) -> str:
    """The key in base32, for people who type it instead of scanning."""
    import base64

    return base64.b32encode(bytes.fromhex(device.key)).decode().rstrip("=")


def qr_svg(device: TotpFactor) -> str:
    """The provisioning address as an inline SVG QR code (segno: no image files, nothing from elsewhere)."""
    return segno.make(provisioning_uri(device), error="m").svg_inline(
        scale=4, title="QR code for your authenticator app"
    )


def confirm_totp(actor: Actor, device: TotpFactor, code: str) -> list[str]:
    """Confirm the pending authenticator with a code it shows; returns new recovery codes (shown once).

    ValueError with the sentence to show when the code is wrong.
    """
    if not device.verify_token(code):
        raise ValueError("That code did not match. Check the time on your phone and enter the code shown now.")
    with transaction.atomic():
        TotpFactor.objects.filter(user=device.user, confirmed=True).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _replace_recovery_codes(device.user)
        record_audit(actor, "user.mfa_enrolled", target=device.user, details={"factor": "totp"})
    return codes


def new_recovery_codes(actor: Actor, user: User) -> list[str]:
    """A fresh set of recovery codes; the old ones stop working. Returned once, kept only as hashes."""
    with transaction.atomic():
        codes = _replace_recovery_codes(user)
        record_audit(actor, "user.recovery_codes_replaced", target=user)
    return codes


def ensure_recovery_codes(user: User) -> list[str]:
    """Recovery codes for a person enrolling a factor who has none (a passkey as their first factor): returned
    once; [] when they have a set already (a second passkey does not replace the codes they keep)."""
    if RecoveryCodes.objects.filter(user=user).exists():
        return []
    return _replace_recovery_codes(user)


def reset_factors(actor: Actor, user: User) -> None:
    """An Admin removes every second factor of `user` (a lost phone or passkey): they enrol again at their next
    sign-in.

    Their open sessions end too, so a session opened with the lost factor does not outlive it.
    """
    with transaction.atomic():
        removed = TotpFactor.objects.filter(user=user).delete()[0] + Passkey.objects.filter(user=user).delete()[0]
        RecoveryCodes.objects.filter(user=user).delete()
        record_audit(actor, "user.mfa_reset", target=user, details={"factors_removed": removed})
        end_all_sessions(user)


def verify_second_factor(request: HttpRequest, code: str) -> Device | None:
    """The factor of the signed-in person that accepts `code` (authenticator code or recovery code), marked on
    the session as verified; None when none does."""
    user = request.user
    candidates: list[Device] = list(TotpFactor.objects.filter(user=user, confirmed=True))
    candidates += list(RecoveryCodes.objects.filter(user=user, confirmed=True))
    for device in candidates:
        with transaction.atomic():
            locked = type(device).objects.select_for_update().get(pk=device.pk)
            if locked.verify_token(code):
                django_otp.login(request, locked)
                return locked
    return None


def second_factor_wait(user: User) -> int:
    """Seconds until the person's factors take a code again after wrong ones (django-otp doubles the wait
    with each wrong code); 0 when they take one now."""
    from django.utils import timezone

    waits = [0]
    for device in [*TotpFactor.objects.filter(user=user), *RecoveryCodes.objects.filter(user=user)]:
        allowed, data = device.verify_is_allowed()
        if not allowed and data and data.get("locked_until"):
            waits.append(int((data["locked_until"] - timezone.now()).total_seconds()) + 1)
    return max(waits)


def _replace_recovery_codes(user: User) -> list[str]:
    RecoveryCodes.objects.filter(user=user).delete()
    device = RecoveryCodes.objects.create(user=user, name="Recovery codes")
    codes = [_readable(secrets.token_hex(5)) for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, code_hash=hash_recovery_code(c)) for c in codes)
    return codes


def _readable(hex_code: str) -> str:
    return f"{hex_code[:5]}-{hex_code[5:]}"
