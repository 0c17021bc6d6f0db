"""Small factories for people tests: a person with an authenticator app, and codes from it; a passkey
authenticator in software."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

import cbor2
import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

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


class SoftwarePasskey:
    """What a phone or security key does with a passkey, in Python: an EC P-256 key, "none" attestation, and a
    use counter. It answers the portal's real options with real answers, so py_webauthn checks them for real.
    `origin` is the page address a browser would write into its answers."""

    def __init__(self, origin: str = "https://portal.example.org"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.origin = origin
        self.sign_count = 0

    def create(self, options_json: str) -> str:
        """The answer to `navigator.credentials.create()` with these options."""
        options = json.loads(options_json)
        public = self.key.public_key().public_numbers()
        cose_key = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: public.x.to_bytes(32, "big"), -3: public.y.to_bytes(32, "big")})
        attested = bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + cose_key
        # Flags: user present (0x01), user verified (0x04), attested credential data follows (0x40).
        auth_data = self._auth_data(options["rp"]["id"], 0x45) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        response = {
            "clientDataJSON": _b64(self._client_data("webauthn.create", options["challenge"])),
            "attestationObject": _b64(attestation),
            "transports": ["internal"],
        }
        return self._credential(response)

    def get(self, options_json: str) -> str:
        """The answer to `navigator.credentials.get()` with these options; the counter goes up by one."""
        options = json.loads(options_json)
        self.sign_count += 1
        auth_data = self._auth_data(options["rpId"], 0x05)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": _b64(client_data),
            "authenticatorData": _b64(auth_data),
            "signature": _b64(signature),
        }
        return self._credential(response)

    def _auth_data(self, rp_id: str, flags: int) -> bytes:
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + self.sign_count.to_bytes(4, "big")

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}).encode()

    def _credential(self, response: dict) -> str:
        credential_id = _b64(self.credential_id)
        return json.dumps(
            {
                "id": credential_id,
                "rawId": credential_id,
                "type": "public-key",
                "response": response,
                "clientExtensionResults": {},
            }
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
