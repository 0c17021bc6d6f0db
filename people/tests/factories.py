"""Small factories for people tests: a person with an authenticator app, and codes from it."""

from __future__ import annotations

import base64
import time

import pyotp

from people.factors import confirm_totp, pending_totp, setup_key
from portal.actor import SYSTEM_ACTOR


def authenticator(key: str) -> pyotp.TOTP:
    """The person's phone: pyotp computes the codes from the setup key shown on the security page."""
    return pyotp.TOTP(key)


def code_at_step(phone: pyotp.TOTP, steps_from_now: int) -> str:
    """The code of a 30-second step near now. A code is accepted once, and the next must be of a later step;
    the portal allows one step either side, so a test uses -1, 0 and +1 instead of waiting for the clock."""
    return phone.at(time.time() + 30 * steps_from_now)


def enrol(user) -> tuple[pyotp.TOTP, list[str]]:
    """Give `user` a confirmed authenticator app; returns their phone and recovery codes."""
    device = pending_totp(user)
    phone = authenticator(setup_key(device))
    codes = confirm_totp(SYSTEM_ACTOR, device, code_at_step(phone, -1))
    assert base64.b32decode(setup_key(device) + "=" * (-len(setup_key(device)) % 8))
    return phone, codes
