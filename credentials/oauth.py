"""OAuth 2.0 client credentials (RFC 6749 §4.4), token revocation (RFC 7009) and bearer tokens (RFC 6750).

Client authentication is throttled per address and per (client_id, address),
so guessing is slowed and nobody can lock a client out (see `throttle`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit
from portal import throttling
from portal.actor import Actor

from . import secrets, throttle
from .models import AccessToken, AuthFailure, Client, Credential
from .scopes import parse_scope_parameter

# Compared against when the client_id is unknown, so that an unknown client
# costs the same digest-and-compare as a wrong secret.
_NO_SUCH_DIGEST = secrets.digest("no such client")


@dataclass
class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    error: str
    description: str
    status: int = 400
    retry_after: int | None = None

    def __str__(self) -> str:
        return f"{self.error}: {self.description}"


@dataclass
class IssuedToken:
    access_token: str
    expires_in: int
    scopes: list[str]
    record: AccessToken


def authenticate_client(client_id: str, client_secret: str, *, ip: str | None) -> tuple[Client, Credential]:
    """Return the client and the credential whose secret was presented, or raise `invalid_client`.

    Every failure is recorded (for the throttle and the health view) and audited,
    in the same transaction as the throttle's check (see `throttle`).
    """
    with transaction.atomic():
        throttle.hold(client_id, ip)
        outcome = _authenticate(client_id, client_secret, ip)
    if isinstance(outcome, OAuthError):
        raise outcome
    return outcome


def _authenticate(client_id: str, client_secret: str, ip: str | None) -> tuple[Client, Credential] | OAuthError:
    retry_after = throttle.throttle_delay(client_id, ip)
    client = Client.objects.select_related("environment").filter(client_id=client_id).first()
    # An address this client obtained a token from lately keeps its allowance: its secret is still checked
    # (one SHA-256 compare), so the real client behind a shared address is never refused while someone
    # there guesses. Guessing a 256-bit secret gains nothing from it; only wrong secrets get 429.
    allowance = bool(retry_after) and _recently_succeeded(client, ip)
    if retry_after and not allowance:
        # Attach the client when it exists, so its environment's health view counts the throttling.
        _record_failure(client_id, ip, AuthFailure.Reason.THROTTLED, client)
        return OAuthError(
            "slow_down",
            "too many failed authentications; try again later",
            status=429,
            retry_after=retry_after,
        )
    if client is None:
        secrets.matches(client_secret, _NO_SUCH_DIGEST)
        return _fail(client_id, ip, AuthFailure.Reason.UNKNOWN_CLIENT, None)
    now = timezone.now()
    credential = None
    # Compare with every credential of the client, not just until a match, to keep the time flat.
    for candidate in client.credentials.all():
        if secrets.matches(client_secret, candidate.secret_digest):
            credential = candidate
    if credential is None and allowance:
        _record_failure(client_id, ip, AuthFailure.Reason.THROTTLED, client)
        return OAuthError(
            "slow_down", "too many failed authentications; try again later", status=429, retry_after=retry_after
        )
    if credential is None:
        return _fail(client_id, ip, AuthFailure.Reason.BAD_SECRET, client)
    if client.disabled_at is not None:
        return _fail(client_id, ip, AuthFailure.Reason.DISABLED_CLIENT, client, credential=credential)
    if credential.state_at(now) != Credential.State.ACTIVE:
        return _fail(client_id, ip, AuthFailure.Reason.INACTIVE_CREDENTIAL, client, credential=credential)
    return client, credential


def _recently_succeeded(client: Client | None, ip: str | None) -> bool:
    """Whether `client` obtained a token from `ip` within OAUTH_SUCCESS_ALLOWANCE_HOURS."""
    if client is None or ip is None:
        return False
    since = timezone.now() - datetime.timedelta(hours=settings.OAUTH_SUCCESS_ALLOWANCE_HOURS)
    return AccessToken.objects.filter(client=client, issued_ip=ip, issued_at__gte=since).exists()


def issue_token(client: Client, credential: Credential, scope: str | None, *, ip: str | None) -> IssuedToken:
    """Issue an access token for the requested scopes (default: all of the client's), recording who and where."""
    requested = parse_scope_parameter(scope) if scope is not None else sorted(client.scopes)
    if scope is not None and not requested:
        raise OAuthError("invalid_scope", "the scope parameter is empty")
    beyond = [s for s in requested if s not in client.scopes]
    if beyond:
        raise OAuthError("invalid_scope", f"the client may not request: {' '.join(beyond)}")
    now = timezone.now()
    lifetime = settings.ACCESS_TOKEN_LIFETIME_SECONDS
    token = secrets.new_access_token()
    with transaction.atomic():
        record = AccessToken.objects.create(
            token_digest=secrets.digest(token),
            client=client,
            credential=credential,
            environment=client.environment,
            scopes=requested,
            issued_at=now,
            expires_at=now + datetime.timedelta(seconds=lifetime),
            issued_ip=ip,
        )
        Credential.objects.filter(pk=credential.pk).update(last_used_at=now, last_used_ip=ip)
        record_audit(
            _client_actor(client, ip),
            "token.issued",
            target=credential,
            environment=client.environment,
            details={"client_id": client.client_id, "scopes": requested, "ip": ip, "issue_id": record.pk},
        )
    return IssuedToken(access_token=token, expires_in=lifetime, scopes=requested, record=record)


def revoke_presented_token(client: Client, token: str, *, ip: str | None) -> None:
    """RFC 7009: revoke the token if it was issued to this client; otherwise do nothing (and say nothing)."""
    record = AccessToken.objects.filter(token_digest=secrets.digest(token), client=client).first()
    if record is None or record.revoked_at is not None:
        return
    with transaction.atomic():
        record.revoked_at = timezone.now()
        record.revoked_reason = "revoked by the client (RFC 7009)"
        record.save(update_fields=["revoked_at", "revoked_reason"])
        record_audit(
            _client_actor(client, ip),
            "token.revoked",
            target=record.credential,
            environment=client.environment,
            details={"client_id": client.client_id, "issue_id": record.pk, "ip": ip},
        )


class BearerError(Exception):
    """Why a bearer token was refused, in RFC 6750 terms."""

    def __init__(self, error: str | None, description: str, status: int = 401, scope: str | None = None):
        self.error, self.description, self.status, self.scope = error, description, status, scope
        super().__init__(description)

    def www_authenticate(self) -> str:
        parts = ['Bearer realm="Integration Tools"']
        if self.error:
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{self.description}"')
        if self.scope:
            parts.append(f'scope="{self.scope}"')
        return ", ".join(parts)


def resolve_bearer(authorization: str) -> AccessToken:
    """Turn an `Authorization` header into a live access token, or raise `BearerError`."""
    if not authorization:
        raise BearerError(None, "an access token is required: send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise BearerError("invalid_request", "the Authorization header must be: Bearer <token>", status=400)
    record = (
        AccessToken.objects.select_related("environment__published_version", "client")
        .filter(token_digest=secrets.digest(token))
        .first()
    )
    if record is None:
        raise BearerError("invalid_token", "the access token is not valid")
    state = record.state_at(timezone.now())
    if state != "active":
        raise BearerError("invalid_token", f"the access token is {state}")
    return record


def _fail(
    client_id: str, ip: str | None, reason: str, client: Client | None, credential: Credential | None = None
) -> OAuthError:
    _record_failure(client_id, ip, reason, client, credential)
    return OAuthError("invalid_client", "client authentication failed", status=401)


def _record_failure(
    client_id: str, ip: str | None, reason: str, client: Client | None, credential: Credential | None = None
) -> None:
    environment = client.environment if client else None
    with transaction.atomic():
        failure = AuthFailure.objects.create(client_id=client_id[:64], ip=ip, reason=reason, environment=environment)
        # Summarised: the raw failures stay in AuthFailure (the throttle and the Overview count them); the
        # audit trail gets the 1st, 10th, 100th... of a window per client, address and reason, with the count.
        # Every client_id that is no client counts as one: a new made-up id per request would otherwise open
        # a new count, and a row, each time (only unknown clients' failures have no environment).
        start = throttling.window_start(failure.at, settings.OAUTH_FAILURE_WINDOW_SECONDS)
        same = {"environment__isnull": True} if client is None else {"client_id": client_id[:64]}
        so_far = AuthFailure.objects.filter(ip=ip, reason=reason, at__gte=start, **same).count()
        if not throttling.worth_an_audit_row(so_far):
            return
        details = {"client_id": client_id[:64], "reason": reason, "ip": ip, "in_window_so_far": so_far}
        if credential is not None:
            details["credential"] = credential.name
        actor = _client_actor(client, ip) if client else Actor.for_client(f"unknown client {client_id[:64]!r}", ip=ip)
        record_audit(
            actor,
            "client.authentication_failed",
            target=credential or client,
            environment=environment,
            details=details,
        )


def _client_actor(client: Client, ip: str | None) -> Actor:
    """An API client as the audit trail names it ("name (client_id)"), calling from `ip`.

    The token endpoint is where a client's changes enter: it knows who the client is only once it has
    authenticated it, so the actor is built here. Its user agent is not recorded, as it never has been."""
    return Actor.for_client(f"{client.name} ({client.client_id})", ip=ip)
