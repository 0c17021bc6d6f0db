"""Passkeys (WebAuthn) as a second factor: adding, using and removing them, on py_webauthn (`webauthn`).

Each ceremony's challenge is made by the server, kept in the person's session (one per ceremony, bound to
the person), taken out before the answer is checked, so it is used once whatever the outcome, and refused
after CHALLENGE_SECONDS. Passkeys are bound to a relying party: an ID (a domain name) and the origin their
answers must come from, which follow PORTAL_URL unless WEBAUTHN_RP_ID / WEBAUTHN_ORIGIN say otherwise.

Every addition, removal and use is an audit event like the authenticator app's (`user.mfa_enrolled`,
`user.mfa_removed`, `sign_in.second_factor`); failures are summarised like wrong codes
(`sign_in.passkey_failed`, `user.passkey_registration_failed`), so a flood of bad answers writes a handful.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import time
from typing import TYPE_CHECKING, cast

import django_otp
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import InvalidJSONStructure, WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from environments.audit import record_audit
from portal.actor import Actor

from .factors import ensure_recovery_codes, has_second_factor
from .models import Passkey, RecoveryCodes
from .sign_in import summarise_failure

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.base import SessionBase

# Long enough to find a security key and type a PIN; the browser's prompt gives up at the same time.
CHALLENGE_SECONDS = 300
NAME_MAX_LENGTH = 64  # django-otp's Device.name
MAX_PASSKEYS = 10
_SESSION_KEYS = {"create": "passkey_registration", "get": "passkey_authentication"}
_USED_ONCE = "No passkey request is waiting for this answer (each is used once): press the button again."


class PasskeyError(ValueError):
    """A passkey step that did not succeed; the message is the sentence to show the person."""


@dataclasses.dataclass(frozen=True)
class RelyingParty:
    """Whom passkeys are made for: `id` (a domain name), the `origin` answers must come from, and the `name`
    authenticators show. `problem` says why passkeys cannot work with these settings ("" when they can)."""

    id: str
    origin: str
    name: str
    problem: str = ""


def relying_party() -> RelyingParty:
    """The relying party from WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN, each defaulting to PORTAL_URL's."""
    origin = (settings.WEBAUTHN_ORIGIN or _portal_origin()).rstrip("/").lower()
    host = _host_of(origin)
    rp_id = (settings.WEBAUTHN_RP_ID or host).lower()
    party = RelyingParty(id=rp_id, origin=origin, name=settings.OTP_TOTP_ISSUER)
    return dataclasses.replace(party, problem=_problem(party, host))


def passkeys_of(user: User) -> list[Passkey]:
    """The person's passkeys, oldest first."""
    return list(Passkey.objects.filter(user=user))


def registration_options(session: SessionBase, user: User, name: str) -> str:
    """Options for `navigator.credentials.create()` as JSON; the challenge is kept in `session`.

    PasskeyError when the name will not do, the person has the most passkeys allowed, or passkeys cannot
    work with the settings: said before the browser asks anything, so no passkey is made for nothing."""
    party = _usable_relying_party()
    _check_name(user, name)
    if Passkey.objects.filter(user=user).count() >= MAX_PASSKEYS:
        raise PasskeyError(f"You have {MAX_PASSKEYS} passkeys, the most one person may have: remove one first.")
    handle = Passkey.objects.filter(user=user).values_list("user_handle", flat=True).first()
    options = generate_registration_options(
        rp_id=party.id,
        rp_name=party.name,
        # WebAuthn's user.id: random bytes, the same for all of one person's passkeys, never the database id.
        user_id=base64url_to_bytes(handle) if handle else secrets.token_bytes(32),
        user_name=user.get_username(),
        timeout=CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(user),
    )
    _keep_challenge(session, "create", user, options.challenge, user_handle=bytes_to_base64url(options.user.id))
    return options_to_json(options)


def register(actor: Actor, session: SessionBase, user: User, name: str, answer: str) -> tuple[Passkey, list[str]]:
    """Check the browser's answer to the options and keep the new passkey under `name`; returns it and, when it
    is the person's first second factor, their new recovery codes (shown once). Audited either way;
    PasskeyError with the sentence to show when it is refused."""
    try:
        with transaction.atomic():
            passkey = _register(session, user, name, answer)
            codes = ensure_recovery_codes(user)
            details = {"factor": "passkey", "passkey": passkey.name}
            record_audit(actor, "user.mfa_enrolled", target=user, details=details)
    except PasskeyError:
        summarise_failure(actor, "user.passkey_registration_failed", user.get_username(), "failures")
        raise
    return passkey, codes


def authentication_options(session: SessionBase, user: User) -> str:
    """Options for `navigator.credentials.get()` as JSON, offering the person's own passkeys only; the challenge
    is kept in `session`. PasskeyError when they have none or passkeys cannot work with the settings."""
    party = _usable_relying_party()
    descriptors = _descriptors(user)
    if not descriptors:
        raise PasskeyError("You have no passkey here: enter a code from your authenticator app or a recovery code.")
    options = generate_authentication_options(
        rp_id=party.id,
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=descriptors,
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    _keep_challenge(session, "get", user, options.challenge)
    return options_to_json(options)


def authenticate(request: HttpRequest, answer: str) -> Passkey:
    """The second step with a passkey: check the browser's answer, store the authenticator's new sign count and
    mark the session as verified by this passkey. Audited either way; PasskeyError when it is refused."""
    actor = Actor.from_request(request)
    user = cast("User", request.user)  # past the password step: signed in (login_required)
    try:
        with transaction.atomic():
            passkey = _authenticate(request.session, user, answer)
            details = {"factor": "passkey", "passkey": passkey.name}
            record_audit(actor, "sign_in.second_factor", target=user, details=details)
    except PasskeyError:
        summarise_failure(actor, "sign_in.passkey_failed", user.get_username(), "failures")
        raise
    django_otp.login(request, passkey)
    return passkey


def remove(actor: Actor, user: User, passkey_id: str) -> tuple[str, bool]:
    """Remove one of the person's passkeys; returns its name and whether it was their last second factor (then
    their recovery codes go too: they stand in for a factor they no longer have). Sessions it verified are
    asked for a factor again at their next request (django-otp finds the passkey gone)."""
    with transaction.atomic():
        passkey = Passkey.objects.select_for_update().filter(user=user, pk=_int_or_none(passkey_id)).first()
        if passkey is None:
            raise PasskeyError("That passkey is not among yours: it was removed already.")
        passkey.delete()
        last = not has_second_factor(user)
        if last:
            RecoveryCodes.objects.filter(user=user).delete()
        record_audit(
            actor,
            "user.mfa_removed",
            target=user,
            details={"factor": "passkey", "passkey": passkey.name, "last_factor": last},
        )
    return passkey.name, last


def _register(session: SessionBase, user: User, name: str, answer: str) -> Passkey:
    party = _usable_relying_party()
    kept = _take_challenge(session, "create", user)
    name = _check_name(user, name)
    try:
        credential = parse_registration_credential_json(_answer_or_refuse(answer))
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(kept["challenge"]),
            expected_rp_id=party.id,
            expected_origin=party.origin,
        )
    except (WebAuthnException, ValueError) as error:
        raise PasskeyError(_explain(error, party)) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if Passkey.objects.filter(credential_id=credential_id).exists():
        raise PasskeyError("That passkey is registered here already: each passkey is added once.")
    try:
        with transaction.atomic():
            return Passkey.objects.create(
                user=user,
                name=name,
                credential_id=credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                user_handle=kept["user_handle"],
                transports=[str(t.value) for t in credential.response.transports or []],
            )
    except IntegrityError:  # the same passkey or name, added from another browser at the same moment
        raise PasskeyError("That passkey or name was added a moment ago: reload the page to see it.") from None


def _authenticate(session: SessionBase, user: User, answer: str) -> Passkey:
    """Called in a transaction: the passkey stays locked until its use is audited."""
    party = _usable_relying_party()
    kept = _take_challenge(session, "get", user)
    try:
        credential = parse_authentication_credential_json(_answer_or_refuse(answer))
    except (WebAuthnException, ValueError) as error:
        raise PasskeyError(_explain(error, party)) from None
    # Locked, so two answers at once cannot both pass the sign-count check with the same count.
    passkey = (
        Passkey.objects.select_for_update()
        .filter(user=user, credential_id=bytes_to_base64url(credential.raw_id))
        .first()
    )
    if passkey is None:
        raise PasskeyError("That passkey is not one of yours here: use one listed on your security page.")
    handle = credential.response.user_handle
    if handle and not secrets.compare_digest(bytes_to_base64url(handle), passkey.user_handle):
        raise PasskeyError("That passkey was made for another person's account: it was not accepted.")
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(kept["challenge"]),
            expected_rp_id=party.id,
            expected_origin=party.origin,
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
        )
    except (WebAuthnException, ValueError) as error:
        raise PasskeyError(_explain(error, party)) from None
    passkey.sign_count = verified.new_sign_count
    passkey.set_last_used_timestamp(commit=False)
    passkey.save(update_fields=["sign_count", "last_used_at"])
    return passkey


def _keep_challenge(session: SessionBase, ceremony: str, user: User, challenge: bytes, **extra: str) -> None:
    session[_SESSION_KEYS[ceremony]] = {
        "challenge": bytes_to_base64url(challenge),
        "user": user.pk,
        "expires": time.time() + CHALLENGE_SECONDS,
        **extra,
    }


def _take_challenge(session: SessionBase, ceremony: str, user: User) -> dict:
    """The kept challenge, taken out of the session: it answers one attempt, good or bad."""
    kept = session.pop(_SESSION_KEYS[ceremony], None)
    if not isinstance(kept, dict) or kept.get("user") != user.pk:
        raise PasskeyError(_USED_ONCE)
    if time.time() > kept["expires"]:
        raise PasskeyError(
            f"The passkey request expired (it lasts {CHALLENGE_SECONDS // 60} minutes): press the button again."
        )
    return kept


def _check_name(user: User, name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise PasskeyError('Name the passkey (for example "Work laptop" or "Blue security key") to tell it apart.')
    if len(name) > NAME_MAX_LENGTH:
        raise PasskeyError(f"A passkey's name is at most {NAME_MAX_LENGTH} characters; that one has {len(name)}.")
    if Passkey.objects.filter(user=user, name__iexact=name).exists():
        raise PasskeyError(f'You have a passkey called "{name}" already: choose another name.')
    return name


def _answer_or_refuse(answer: str) -> str:
    if not answer.strip():
        raise PasskeyError(
            "No passkey answer arrived with the form: passkeys need JavaScript and a browser that supports them."
        )
    return answer


def _descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    known = {transport.value for transport in AuthenticatorTransport}
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(passkey.credential_id),
            transports=[AuthenticatorTransport(t) for t in passkey.transports if t in known] or None,
        )
        for passkey in Passkey.objects.filter(user=user)
    ]


# py_webauthn says what failed in English meant for developers; these say it for the person.
_REASONS = (
    ("challenge", "It answers another request than this page's: press the button again."),
    ("origin", "It was made on another address than {origin}: open the portal there and try again."),
    ("rp id", "It belongs to another site than {rp_id}."),
    ("sign count", "Its use counter went backwards, as a copied passkey's would. If you did not copy it, remove it."),
    ("signature", "Its signature did not verify."),
    ("not present", "The authenticator did not confirm that someone was there (no touch or screen lock)."),
)


def _explain(error: Exception, party: RelyingParty) -> str:
    text = str(error).replace(" See __cause__ for more info", "").rstrip(".")
    if not isinstance(error, InvalidJSONStructure):
        for fragment, sentence in _REASONS:
            if fragment in text.lower():
                return "The passkey was not accepted. " + sentence.format(origin=party.origin, rp_id=party.id)
    return f"The browser's passkey answer could not be read ({text}). Nothing was saved: try again."


def _usable_relying_party() -> RelyingParty:
    party = relying_party()
    if party.problem:
        raise PasskeyError(party.problem)
    return party


def _portal_origin() -> str:
    # A loopback address stands for localhost: WebAuthn takes no IP address, and browsers treat
    # http://localhost as secure, so passkeys work in development (open the portal at localhost).
    scheme, _, rest = settings.PORTAL_URL.partition("://")
    authority = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    for loopback in ("127.0.0.1", "[::1]"):
        if authority == loopback or authority.startswith(f"{loopback}:"):
            authority = "localhost" + authority[len(loopback) :]
    return f"{scheme}://{authority}"


def _host_of(origin: str) -> str:
    authority = origin.partition("://")[2]
    if authority.startswith("["):
        return authority.split("]", 1)[0] + "]"
    return authority.split(":", 1)[0]


def _problem(party: RelyingParty, host: str) -> str:
    try:
        ipaddress.ip_address(party.id.strip("[]"))
    except ValueError:
        pass
    else:
        return (
            f"Passkeys need the portal at a domain name, not the address {party.id}: "
            "set PORTAL_URL (or WEBAUTHN_RP_ID and WEBAUTHN_ORIGIN) to it."
        )
    if not party.id or not (host == party.id or host.endswith(f".{party.id}")):
        return f"WEBAUTHN_ORIGIN ({party.origin}) is not on WEBAUTHN_RP_ID ({party.id}) or a subdomain of it."
    if not party.origin.startswith("https://") and host != "localhost":
        return f"Passkeys need https: browsers refuse them at {party.origin}."
    return ""


def _int_or_none(value: str) -> int | None:
    return int(value) if str(value).isdigit() else None
