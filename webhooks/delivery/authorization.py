"""Receivers that demand authentication: the OAuth 2.0 bearer token a webhook's receiver wants.

A webhook whose `ReceiverAuth` says OAuth 2.0 sends every request with
`Authorization: Bearer <token>`, the token got from the receiver's token
endpoint with the client credentials grant (RFC 6749 §4.4), the client
authenticated by its secret (`client_secret_basic` or `client_secret_post`)
or by a JWT signed with a key the portal made (`private_key_jwt`, RFC 7523,
as SMART Backend Services asks: RS384 or ES384, `exp` within five minutes, a
fresh `jti`, `aud` the token URL; the public key is in the environment's JWKS).

- Fetched before the first request, and kept until shortly before its
  `expires_in`: in each process's memory, and in the webhook's `ReceiverToken`
  row (encrypted), which every worker reads. The row is locked while a token is
  fetched, so the workers that find it stale wait for the one fetching instead
  of fetching too: one fetch per expiry, not one per process.
- A 401 from the receiver fetches a new token once (unless another worker
  already did) and sends again within the same attempt.
- The token request goes through the same address checks as the delivery
  (`outbound.post`), and its time counts inside the attempt's timeout.
- A failure is the attempt's: `auth_failed` (credentials refused, by the token
  endpoint or, with a fresh token, by the receiver) or `token_endpoint_error`
  (unreachable, too slow, an error, or an answer that is not a token), with a
  sentence saying what to do. The history records `Authorization: [token]`,
  never the token; nothing here logs a token or a secret.

Attempts may run on the I/O threads (`inflight`), which otherwise touch no
database: the rare reads here (settings once per process and keys version, the
shared token once per expiry) close that thread's connection when done.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import quote, urlencode, urlsplit

import jwt
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ..models import ReceiverAuth, ReceiverToken
from . import outbound

T = TypeVar("T")

# What the history shows as the Authorization header's value: that a token was sent, not which.
TOKEN_PLACEHOLDER = "[token]"  # noqa: S105 - a placeholder, not a secret
SETTINGS_CACHE_SECONDS = 60
# A token is fetched again this long before it expires (at most; a tenth of its life for short-lived ones).
REFRESH_MARGIN_SECONDS = 60
# When the token endpoint gives no expires_in (RFC 6749 only recommends it): assume a short life.
DEFAULT_EXPIRES_IN = 300
TOKEN_ANSWER_MAX_BYTES = 64 * 1024
USER_AGENT = "IntegrationTools-Webhooks/1.0"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services: an assertion's exp at most five minutes ahead.
ASSERTION_SECONDS = 240


@dataclass(frozen=True)
class AuthSettings:
    """What an attempt needs of a webhook's receiver authentication, decrypted."""

    method: str
    token_url: str
    client_id: str
    client_secret: str
    secret_method: str
    scope: str
    resource: str = ""
    # private_key_jwt: the key that signs assertions (PEM, decrypted), its algorithm and the `kid` it is published as.
    private_key: str = ""
    key_algorithm: str = ""
    kid: str = ""
    # Mutual TLS and the receiver's own CAs, for the token endpoint and the receiver alike.
    tls: outbound.ClientTLS | None = None
    cert_not_after: datetime.datetime | None = None

    @property
    def uses_oauth(self) -> bool:
        return self.method in (ReceiverAuth.Method.OAUTH2_SECRET, ReceiverAuth.Method.OAUTH2_JWT)

    def __repr__(self) -> str:
        # Never the secret: reprs end up in logs and error reports.
        return f"<AuthSettings {self.method} {self.client_id} at {self.token_url}>"


class TokenFailure(Exception):
    """No token: `error` is the attempt's error class, the message says what to do."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error = error
        self.detail = detail


_settings: dict[int, tuple[int, float, AuthSettings | None]] = {}
_tokens: dict[int, tuple[int, str, datetime.datetime]] = {}
_lock = threading.Lock()


def _touching_database(work: Callable[[], T]) -> T:
    """Run `work`; on an I/O thread, close the connection it opened (those threads otherwise have none)."""
    try:
        return work()
    finally:
        if threading.current_thread().name.startswith("webhook-io"):
            connection.close()


def _load(webhook_id: int, keys_version: int) -> AuthSettings | None:
    auth = ReceiverAuth.objects.filter(webhook_id=webhook_id).first()
    if auth is None or not (auth.uses_oauth or auth.uses_client_tls):
        return None
    tls, not_after = None, None
    if auth.uses_client_tls:
        key = auth.client_key if auth.client_cert else ""
        tls = outbound.ClientTLS(webhook_id, keys_version, auth.client_cert, key, auth.ca_bundle)
        not_after = auth.cert_not_after if auth.client_cert else None
    loaded = AuthSettings(
        auth.method, auth.token_url, auth.client_id, "", "", auth.scope, auth.resource, tls=tls,
        cert_not_after=not_after,
    )  # fmt: skip
    if auth.method == ReceiverAuth.Method.OAUTH2_JWT:
        return replace(loaded, private_key=auth.private_key, key_algorithm=auth.key_algorithm, kid=auth.kid)
    if auth.method == ReceiverAuth.Method.OAUTH2_SECRET:
        return replace(loaded, client_secret=auth.client_secret, secret_method=auth.secret_method)
    return loaded


def settings_of(webhook_id: int, keys_version: int) -> AuthSettings | None:
    """The webhook's receiver authentication (None: the signature only), cached per process and keys version."""
    with _lock:
        cached = _settings.get(webhook_id)
    if cached is not None and cached[0] == keys_version and cached[1] > time.monotonic():
        return cached[2]
    loaded = _touching_database(lambda: _load(webhook_id, keys_version))
    with _lock:
        _settings[webhook_id] = (keys_version, time.monotonic() + SETTINGS_CACHE_SECONDS, loaded)
    return loaded


def post(
    webhook_id: int,
    keys_version: int,
    auth: AuthSettings,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    verify_tls: bool,
) -> outbound.Response:
    """POST with a bearer token, all within the attempt's `timeout`: the token (cached, or fetched now), then
    the request; on a 401, a new token once and the request again."""
    started = time.monotonic()
    if auth.cert_not_after is not None and auth.cert_not_after <= timezone.now():
        return _failed(
            started,
            "tls_client_cert_rejected",
            f"The TLS client certificate expired on {auth.cert_not_after:%Y-%m-%d %H:%M} UTC; nothing was sent: "
            "upload a renewed certificate.",
        )
    if not auth.uses_oauth:
        return replace(
            outbound.post(url, body, headers, timeout=timeout, verify_tls=verify_tls, tls=auth.tls),
            duration_ms=_ms_since(started),
        )
    deadline = started + timeout
    used: str | None = None
    for _ in range(2):
        try:
            used = token_for(webhook_id, keys_version, auth, deadline, stale=used)
        except TokenFailure as failure:
            return _failed(started, failure.error, failure.detail)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _failed(started, "timeout", f"getting the token took the whole timeout ({timeout:g} s)")
        sent = dict(headers, Authorization=f"Bearer {used}")
        response = outbound.post(url, body, sent, timeout=remaining, verify_tls=verify_tls, tls=auth.tls)
        if response.status_code != 401:
            break
    if response.status_code == 401:
        response.error = "auth_failed"
        response.error_detail = (
            f"The receiver answered 401 to a fresh access token from {_host(auth.token_url)}: check that the "
            "receiver accepts tokens of this token endpoint and that the client id has the access it needs."
        )
    return replace(response, duration_ms=_ms_since(started))


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _failed(started: float, error: str, detail: str) -> outbound.Response:
    return outbound.Response(duration_ms=_ms_since(started), error=error, error_detail=detail[:500])


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def token_for(
    webhook_id: int, keys_version: int, auth: AuthSettings, deadline: float, *, stale: str | None = None
) -> str:
    """A live token for the webhook (not `stale`, one the receiver refused): this process's, the one every
    worker shares, or fetched now under the shared row's lock. Raises TokenFailure."""
    now = timezone.now()
    with _lock:
        cached = _tokens.get(webhook_id)
    if cached is not None and cached[0] == keys_version and cached[2] > now and cached[1] != stale:
        return cached[1]
    try:
        token, refresh_at = _touching_database(lambda: _shared_token(webhook_id, keys_version, auth, deadline, stale))
    except DatabaseError as error:
        raise TokenFailure(
            "token_endpoint_error",
            f"Another worker's token request to {_host(auth.token_url)} did not end in time "
            f"({error.__class__.__name__}); the next attempt tries again.",
        ) from None
    with _lock:
        _tokens[webhook_id] = (keys_version, token, refresh_at)
    return token


def _shared_token(
    webhook_id: int, keys_version: int, auth: AuthSettings, deadline: float, stale: str | None
) -> tuple[str, datetime.datetime]:
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # Wait for another worker's fetch no longer than this attempt may last.
            wait_ms = max(int((deadline - time.monotonic()) * 1000), 1)
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wait_ms}ms"])
        ReceiverToken.objects.get_or_create(webhook_id=webhook_id)
        row = ReceiverToken.objects.select_for_update().get(webhook_id=webhook_id)
        now = timezone.now()
        if row.keys_version == keys_version and row.refresh_at and row.refresh_at > now and row.token != stale:
            return row.token, row.refresh_at
        token, expires_in = fetch_token(auth, deadline)
        row.token, row.keys_version, row.fetched_at = token, keys_version, now
        row.refresh_at = now + datetime.timedelta(seconds=expires_in - min(REFRESH_MARGIN_SECONDS, expires_in / 10))
        row.fetches += 1
        row.save()
        return token, row.refresh_at


def _token_request(auth: AuthSettings) -> tuple[bytes, dict[str, str]]:
    form = {"grant_type": "client_credentials"}
    if auth.scope:
        form["scope"] = auth.scope
    if auth.resource:
        form["resource"] = auth.resource
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if auth.method == ReceiverAuth.Method.OAUTH2_JWT:
        form.update(client_assertion_type=ASSERTION_TYPE, client_assertion=client_assertion(auth))
    elif auth.secret_method == ReceiverAuth.SecretMethod.POST:
        form.update(client_id=auth.client_id, client_secret=auth.client_secret)
    else:
        # RFC 6749 §2.3.1: each part form-urlencoded before the Basic encoding.
        pair = f"{quote(auth.client_id, safe='')}:{quote(auth.client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return urlencode(form).encode(), headers


def client_assertion(auth: AuthSettings) -> str:
    """A private_key_jwt assertion (RFC 7523 §3; SMART Backend Services): signed by our key, for the token URL,
    valid ASSERTION_SECONDS, with a fresh `jti` so that it cannot be replayed."""
    now = int(time.time())
    claims = {
        "iss": auth.client_id,
        "sub": auth.client_id,
        "aud": auth.token_url,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, auth.private_key, algorithm=auth.key_algorithm, headers={"kid": auth.kid, "typ": "JWT"})


def fetch_token(auth: AuthSettings, deadline: float) -> tuple[str, float]:
    """Ask the token endpoint for a token, within the deadline: (the token, its life in seconds)."""
    body, headers = _token_request(auth)
    remaining = deadline - time.monotonic()
    host = _host(auth.token_url)
    if remaining <= 0:
        raise TokenFailure("timeout", f"no time was left to ask {host} for a token")
    answer = outbound.post(
        auth.token_url,
        body,
        headers,
        timeout=remaining,
        verify_tls=True,
        body_limit=TOKEN_ANSWER_MAX_BYTES,
        tls=auth.tls,
    )
    if answer.error:
        raise TokenFailure(
            "token_endpoint_error",
            f"The token endpoint {host} could not be used ({answer.error}: {answer.error_detail}); "
            "check its URL, and that it is up.",
        )
    return _read_token_answer(answer, host)


def _read_token_answer(answer: outbound.Response, host: str) -> tuple[str, float]:
    try:
        parsed = json.loads(answer.body)
    except ValueError:
        parsed = None
    parsed = parsed if isinstance(parsed, dict) else {}
    if answer.status_code in (400, 401, 403):
        code = str(parsed.get("error", ""))[:60] or f"HTTP {answer.status_code}"
        described = str(parsed.get("error_description", ""))[:200]
        raise TokenFailure(
            "auth_failed",
            f"The token endpoint {host} refused our client credentials ({code}{': ' + described if described else ''})"
            ": check the client id, the secret or key, and the scope registered with the receiver.",
        )
    if answer.status_code != 200:
        raise TokenFailure(
            "token_endpoint_error", f"The token endpoint {host} answered HTTP {answer.status_code}, not a token."
        )
    token, token_type, expires_in = parsed.get("access_token"), parsed.get("token_type", ""), parsed.get("expires_in")
    if not isinstance(token, str) or not token or str(token_type).lower() != "bearer":
        raise TokenFailure(
            "token_endpoint_error",
            f"The token endpoint {host} answered 200 without a bearer access token: is the token URL right?",
        )
    try:
        life = float(expires_in) if expires_in is not None else DEFAULT_EXPIRES_IN
    except (TypeError, ValueError):
        life = DEFAULT_EXPIRES_IN
    return token, max(life, 1.0)
