"""Outgoing HTTP for webhooks: where a request may go, and sending it there safely.

The address is checked when the connection is made, after DNS resolution, and
the socket connects to that very address: a name that resolves to a public
address at save time and to 10.0.0.1 at send time (DNS rebinding) is refused.
Loopback, private, link-local (cloud metadata), multicast, shared, benchmark,
documentation and other non-global addresses are refused unless
`WEBHOOK_ALLOWED_NETWORKS` admits them, and so is an IPv6 address that carries
such an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64). Only the ports
in `WEBHOOK_ALLOWED_PORTS` are used. Redirects are never followed, and no proxy
from the environment is used.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import os
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import certifi
from django.conf import settings
from urllib3 import PoolManager, Timeout
from urllib3 import exceptions as urllib3_exceptions
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.ssl_ import create_urllib3_context

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedAddress(Exception):
    """The destination resolves to an address that webhooks may not reach."""


class InvalidDestination(ValueError):
    """A webhook URL that cannot be used, with a sentence saying why."""


@cache
def _allowed_networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec if item.strip())


# Ranges refused by name, beyond what `ipaddress` calls non-global. Checked on
# every IPv4 address an IPv6 address can carry too (see `_embedded_ipv4`).
_REFUSED_NETWORKS = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("192.0.0.0/24", "an IETF protocol address"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("240.0.0.0/4", "a reserved address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("fec0::/10", "a site-local address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through: mapped, compatible, 6to4, Teredo, NAT64."""
    embedded = []
    if address.ipv4_mapped:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour:
        embedded.append(address.sixtofour)
    if address.teredo:
        embedded.extend(address.teredo)  # (server, client); the client address is de-obfuscated
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def address_refusal(address: IPAddress) -> str | None:
    """Why this address may not be reached, or None when it may."""
    for network in _allowed_networks(tuple(settings.WEBHOOK_ALLOWED_NETWORKS)):
        if address.version == network.version and address in network:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(address):
            reason = address_refusal(inner)
            if reason:
                return f"{reason} ({inner}) inside an IPv6 address"
    for network, reason in _REFUSED_NETWORKS:
        if address.version == network.version and address in network:
            return reason
    if address.is_unspecified:
        return "not a public address (it means this host)"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global or address.is_reserved:
        return "not a public address"
    return None


@cache
def _allowed_ports(spec: tuple[str, ...]) -> tuple[range, ...]:
    ranges = []
    for item in spec:
        low, _, high = item.strip().partition("-")
        ranges.append(range(int(low), int(high or low) + 1))
    return tuple(ranges)


def port_refusal(port: int) -> str | None:
    """Why webhooks may not send to this port (see WEBHOOK_ALLOWED_PORTS), or None."""
    if any(port in allowed for allowed in _allowed_ports(tuple(settings.WEBHOOK_ALLOWED_PORTS))):
        return None
    return f"port {port} is not one webhooks may use (allowed: {', '.join(settings.WEBHOOK_ALLOWED_PORTS)})"


def resolve_allowed(host: str, port: int) -> list[str]:
    """Resolve `host` and return its addresses, refusing if any of them may not be reached.

    Refusing when any address is blocked (not only the first) stops a name with
    one public and one private record from reaching the private one.
    """
    reason = port_refusal(port)
    if reason:
        raise BlockedAddress(f"{reason}; webhooks may not send there")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise socket.gaierror(error.errno, f"{host} does not resolve") from error
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        reason = address_refusal(address)
        if reason:
            raise BlockedAddress(f"{host} resolves to {address}, {reason}; webhooks may not send there")
        addresses.append(str(address))
    return addresses


def check_url(url: str) -> None:
    """Check a webhook URL when it is saved: scheme, shape and where it resolves now."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what raises for a bad one
    except ValueError as error:
        raise InvalidDestination(f"The URL is not well formed ({error}).") from None
    allowed_schemes = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed_schemes:
        raise InvalidDestination(
            "The URL must start with https://."
            if not settings.WEBHOOK_ALLOW_HTTP
            else "The URL must start with https:// or http://."
        )
    if not parts.hostname:
        raise InvalidDestination("The URL has no host name.")
    if parts.username or parts.password:
        raise InvalidDestination("The URL may not contain a user name or password; use extra headers instead.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        resolve_allowed(parts.hostname, port)
    except BlockedAddress as error:
        raise InvalidDestination(f"{error}.") from error
    except (socket.gaierror, UnicodeError) as error:
        raise InvalidDestination(f"The host {parts.hostname} does not resolve.") from error


# --- A deadline per attempt --------------------------------------------------------------
#
# Socket timeouts bound each read, not the exchange: a receiver that drips one
# byte a second never trips a 5 s read timeout. Every attempt therefore gets a
# deadline, and one watchdog thread per process shuts down the attempt's
# sockets when it passes, which ends any blocked connect, TLS handshake, send
# or read at once. The watchdog holds duplicates of the sockets' descriptors:
# shutdown() on a duplicate ends the connection for every descriptor of it, and
# the duplicate outlives a TLS wrap that detaches the original socket object.


class _Clock:
    """The deadline of one attempt and the sockets it uses."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self.finished = False
        self.sockets: list[socket.socket] = []


_WAKE_SECONDS = 0.02


class _Watchdog:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _Clock]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def start(self, clock: _Clock) -> None:
        with self._condition:
            if self._thread is None or self._pid != os.getpid():  # a forked child has no watchdog thread
                self._heap, self._pid = [], os.getpid()
                self._thread = threading.Thread(target=self._run, name="webhook-deadlines", daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (clock.deadline, next(self._order), clock))
            if self._heap[0][2] is clock:
                # Only an earlier deadline than the one it sleeps towards needs the watchdog awake;
                # waking it for every request cost a thread switch per delivery.
                self._condition.notify()

    def track(self, clock: _Clock, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._condition:
            if clock.finished:
                return
            try:
                copy = sock.dup()
            except OSError:
                return
            clock.sockets.append(copy)
            if clock.expired:
                _shut(copy)

    def finish(self, clock: _Clock) -> None:
        with self._condition:
            clock.finished = True
            sockets, clock.sockets = clock.sockets, []
        for copy in sockets:
            copy.close()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    # Deadlines come every few ms under load, nearly all of finished attempts:
                    # waking at most every WAKE_SECONDS ends the rest together, a few ms late at most.
                    self._condition.wait(None if wait is None else max(wait, _WAKE_SECONDS))
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, _, clock = heapq.heappop(self._heap)
                    if clock.finished:
                        continue
                    clock.expired = True
                    for copy in clock.sockets:
                        _shut(copy)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_watchdog = _Watchdog()
_current = threading.local()


def _track(sock: socket.socket | None) -> None:
    """Put a socket under the current attempt's deadline (outside an attempt, nothing to do)."""
    clock = getattr(_current, "clock", None)
    if clock is not None:
        _watchdog.track(clock, sock)


# What the mixins below are mixed into, for the type checker; at run time they derive from object.
if TYPE_CHECKING:
    _Connection = HTTPConnection
    _Pool = HTTPConnectionPool
else:
    _Connection = _Pool = object


class _CheckedConnectionMixin(_Connection):
    """Connect to an address that passed `resolve_allowed`, keeping the host name for TLS and Host."""

    def _new_conn(self) -> socket.socket:
        addresses = resolve_allowed(self._dns_host, self.port)
        original = self._dns_host
        self._dns_host = addresses[0]
        try:
            sock = super()._new_conn()
        finally:
            self._dns_host = original
        _track(sock)
        return sock


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _DeadlinePoolMixin(_Pool):
    """A keep-alive connection taken from the pool is put under the current attempt's deadline too."""

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        conn = super()._get_conn(timeout)
        _track(getattr(conn, "sock", None))
        return conn


class _CheckedHTTPPool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


_managers: dict[bool, PoolManager] = {}
_managers_lock = threading.Lock()


# Keep-alive connections kept per receiver host; more at once are opened and closed after use.
KEPT_ALIVE_PER_HOST = 16


def _pool_manager(verify_tls: bool) -> PoolManager:
    # One pool manager per process (and TLS setting): keep-alive connections to
    # receivers save a TCP (and TLS) handshake per delivery. urllib3 directly,
    # not requests: its per-request overhead was a third of a delivery's CPU.
    # Every new connection is checked; no proxy from the environment is used.
    with _managers_lock:
        manager = _managers.get(verify_tls)
        if manager is None:
            options: dict[str, Any] = (
                {"cert_reqs": "CERT_REQUIRED", "ca_certs": certifi.where()}
                if verify_tls
                else {"cert_reqs": "CERT_NONE"}
            )
            manager = PoolManager(num_pools=64, maxsize=KEPT_ALIVE_PER_HOST, **options)
            manager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}
            _managers[verify_tls] = manager
        return manager


@dataclass(frozen=True)
class ClientTLS:
    """A webhook's own TLS settings: a client certificate and key (mutual TLS), and CAs of the receiver's added
    to the roots. `version` names them: a change of settings is a new version, and a new pool of connections."""

    webhook_id: int
    version: int
    cert_pem: str = ""
    key_pem: str = ""
    ca_pem: str = ""

    def __repr__(self) -> str:
        # Never the key: reprs end up in logs and error reports.
        return f"<ClientTLS of webhook {self.webhook_id} v{self.version}>"


def _tls_context(tls: ClientTLS, verify_tls: bool) -> ssl.SSLContext:
    context = create_urllib3_context()
    if verify_tls:
        context.load_verify_locations(cafile=certifi.where())
        if tls.ca_pem:
            context.load_verify_locations(cadata=tls.ca_pem)
    if tls.cert_pem and tls.key_pem:
        # The ssl module loads a certificate chain from files only: written for the moment it takes, readable by
        # this user alone, in a directory removed at once.
        with tempfile.TemporaryDirectory(prefix="webhook-tls-") as directory:
            cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
            for path, text in ((cert_path, tls.cert_pem), (key_path, tls.key_pem)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                    file.write(text)
            context.load_cert_chain(cert_path, key_path)
    return context


_tls_managers: dict[tuple[bool, int], tuple[int, PoolManager]] = {}


def _tls_pool_manager(verify_tls: bool, tls: ClientTLS) -> PoolManager:
    """A pool manager of the webhook's own (one per process, webhook and TLS setting; replaced when its TLS
    settings change): connections with its client certificate, checked against its CAs too."""
    with _managers_lock:
        kept = _tls_managers.get((verify_tls, tls.webhook_id))
        if kept is not None and kept[0] == tls.version:
            return kept[1]
    manager = PoolManager(
        num_pools=4,
        maxsize=KEPT_ALIVE_PER_HOST,
        ssl_context=_tls_context(tls, verify_tls),
        cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
    )
    manager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}
    with _managers_lock:
        _tls_managers[(verify_tls, tls.webhook_id)] = (tls.version, manager)
    if kept is not None:
        kept[1].clear()
    return manager


@dataclass
class Response:
    """What one request achieved: a status, or an error class with a detail."""

    duration_ms: int
    status_code: int | None = None
    headers: dict = field(default_factory=dict)
    body: str = ""
    error: str = ""
    error_detail: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# Every error class an attempt can record (besides an HTTP status): the history searches by them.
ERROR_CLASSES = (
    "timeout",
    "connect_timeout",
    "connection_refused",
    "connection_error",
    "tls_error",
    "dns_error",
    "blocked_address",
    "request_error",
    "no_signing_key",
    # Not the receiver's: the worker stopped mid-send, so whether the request arrived is unknown.
    "worker_stopped",
    # Receivers that demand authentication (webhooks/delivery/authorization.py): the token endpoint or the
    # receiver refused our credentials; the token endpoint failed or answered something else than a token;
    # the receiver refused our client certificate.
    "auth_failed",
    "token_endpoint_error",
    "tls_client_cert_rejected",
)


def _error_class(error: Exception) -> tuple[str, str]:
    text = str(error)
    if isinstance(error, BlockedAddress):
        return "blocked_address", text
    refused_by_peer = _client_certificate_refusal(error)
    if refused_by_peer:
        return "tls_client_cert_rejected", refused_by_peer
    if isinstance(error, (urllib3_exceptions.SSLError, ssl.SSLError)):
        return "tls_error", "TLS handshake or certificate verification failed"
    if isinstance(error, urllib3_exceptions.NewConnectionError) and isinstance(
        error.__context__, ConnectionRefusedError
    ):
        return "connection_refused", "the receiver refused the connection"
    # urllib3's NewConnectionError is a ConnectTimeoutError too: a refusal is told apart above.
    if isinstance(error, urllib3_exceptions.ConnectTimeoutError) and "timed out" in text:
        return "connect_timeout", "no connection within the connect timeout"
    if isinstance(error, (urllib3_exceptions.ReadTimeoutError, TimeoutError)):
        return "timeout", "no complete response within the timeout"
    if isinstance(error, (urllib3_exceptions.NameResolutionError, socket.gaierror)) or "does not resolve" in text:
        return "dns_error", "the host name does not resolve"
    if isinstance(error, (urllib3_exceptions.HTTPError, OSError)):
        if "Connection refused" in text or isinstance(error, ConnectionRefusedError):
            return "connection_refused", "the receiver refused the connection"
        return "connection_error", "the connection failed or was closed"
    return "request_error", error.__class__.__name__


# TLS alerts a server sends when it refuses (or misses) the client's certificate (RFC 8446 §6.2).
_CLIENT_CERT_ALERTS = (
    "alert certificate required",
    "alert bad certificate",
    "alert unknown ca",
    "alert certificate unknown",
    "alert certificate expired",
    "alert certificate revoked",
    "alert unsupported certificate",
    "alert access denied",
)


def _client_certificate_refusal(error: BaseException) -> str:
    """The receiver's TLS alert refusing our client certificate (or asking for one), as a sentence; else ''."""
    seen: BaseException | None = error
    while seen is not None:
        text = str(seen).lower()
        for alert in _CLIENT_CERT_ALERTS:
            if alert in text:
                return (
                    f"the receiver refused the TLS client certificate (TLS {alert}): upload a certificate the "
                    "receiver trusts (its issuer, its expiry), or ask the receiver's administrators which it expects"
                )
        seen = seen.__context__ or seen.__cause__
    return ""


def _unwrap_blocked(error: Exception) -> Exception:
    # urllib3 wraps exceptions raised while connecting; find ours inside.
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, BlockedAddress):
            return seen
        seen = seen.__context__ or seen.__cause__
    return error


def _excerpt(response: Any, limit: int) -> bytearray:
    """The first `limit` bytes of the body; a longer body is not read to its end (the connection is closed)."""
    excerpt = bytearray()
    while len(excerpt) < limit:
        chunk = response.read(min(4096, limit - len(excerpt)))
        if not chunk:
            return excerpt
        excerpt.extend(chunk)
    if response.read(1):
        response.close()  # more than we record: drop the connection rather than read the rest
    return excerpt


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    verify_tls: bool,
    body_limit: int | None = None,
    tls: ClientTLS | None = None,
) -> Response:
    """POST `body` to `url`; never follows redirects; the whole exchange ends within `timeout` seconds.

    Connect, TLS, sending, the response headers and the first
    WEBHOOK_RESPONSE_BODY_MAX_BYTES of the body share one deadline; a longer body
    is not read to its end (the connection is closed instead of kept alive). `body_limit` reads more of it
    (a token endpoint's answer, which is never recorded). `tls`: the webhook's client certificate and CAs.
    """
    started = time.monotonic()
    clock = _Clock(started + timeout)
    connect_timeout = min(settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS, timeout)
    limit = body_limit or settings.WEBHOOK_RESPONSE_BODY_MAX_BYTES

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    _current.clock = clock
    _watchdog.start(clock)
    try:
        manager = _pool_manager(verify_tls) if tls is None else _tls_pool_manager(verify_tls, tls)
        response = manager.urlopen(
            "POST",
            url,
            body=body,
            headers=headers,
            timeout=Timeout(connect=connect_timeout, read=timeout),
            redirect=False,
            retries=False,
            preload_content=False,
            decode_content=True,
        )
        try:
            excerpt = _excerpt(response, limit)
        finally:
            response.release_conn()
        if clock.expired:
            raise TimeoutError("the deadline passed as the response ended")
    except Exception as error:  # noqa: BLE001 - every failure is recorded as an attempt result
        if clock.expired:
            return Response(
                duration_ms=elapsed(), error="timeout", error_detail=f"no complete response within {timeout:g} s"
            )
        error_code, detail = _error_class(_unwrap_blocked(error))
        return Response(duration_ms=elapsed(), error=error_code, error_detail=detail[:500])
    finally:
        _current.clock = None
        _watchdog.finish(clock)
    return Response(
        duration_ms=elapsed(),
        status_code=response.status,
        headers=dict(response.headers),
        body=bytes(excerpt).decode("utf-8", errors="replace"),
    )
