"""The address a request came from: the one rule every throttle, audit event and access record uses.

`REMOTE_ADDR` is the peer of this process. Behind a reverse proxy that peer is
the proxy, so the proxy says who its own peer was in `X-Forwarded-For`, each
proxy appending the address it saw. Anybody can send that header, so it is
read only when the peer is one of `TRUSTED_PROXIES`, and then from the right:
entries appended by trusted proxies are skipped, and the right-most address
that is not a trusted proxy is the client. What lies left of it was written by
the client (or by proxies we do not run) and proves nothing.

An entry that is not an address (a typo in a proxy's config, a client's
junk forwarded by a proxy) stops the walk: the address is then that of the
last trusted hop, the nearest point anything trustworthy vouches for.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR networks (a bare address is one host); ValueError naming the first entry that is not one."""
    networks = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not a network (CIDR such as 10.0.0.0/8 or 2001:db8::/32)") from None
    return tuple(networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for `request`, worked out once and kept on the request as `request.client_ip`."""
    kept = vars(request)  # HttpRequest declares no `client_ip`: it is kept in the request's own attributes
    if "client_ip" not in kept:
        kept["client_ip"] = client_address(
            request.META.get("REMOTE_ADDR", ""),
            request.META.get("HTTP_X_FORWARDED_FOR", ""),
            _trusted_networks(tuple(settings.TRUSTED_PROXIES)),
        )
    return kept["client_ip"]


def client_address(remote_addr: str, forwarded_for: str, trusted: tuple[IPNetwork, ...]) -> str | None:
    """The right-most address in the chain `forwarded_for, remote_addr` that is not a trusted proxy.

    None when REMOTE_ADDR itself is not an address (a Unix socket peer), so no
    record ever stores something that is not one.
    """
    address = _parse_address(remote_addr)
    if address is None:
        return None
    if _is_trusted(address, trusted) and forwarded_for:
        for entry in reversed(forwarded_for.split(",")):
            hop = _parse_address(entry)
            if hop is None:
                break
            address = hop
            if not _is_trusted(hop, trusted):
                break
    return str(address)


class ClientAddressMiddleware:
    """Sets `request.client_ip` before any view runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        client_ip(request)
        return self.get_response(request)


@functools.lru_cache(maxsize=8)
def _trusted_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_networks(values)


def _is_trusted(address: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def _parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, _port = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d; a zone (%eth0) names our interface, not the peer.
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(text.partition("%")[0])
    return address
