"""Who may read /metrics: a scraper with the bearer token METRICS_TOKEN, or one from METRICS_ALLOWED_NETWORKS."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest

from portal.client_address import client_ip


class Refused(Exception):
    """/metrics refused: `status` 401 (no or a wrong token) or 403 (not configured, or not an allowed address)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def check(request: HttpRequest) -> None:
    """Return when the request may read the metrics; raise Refused otherwise.

    The token is compared in constant time; an address allow-list is the alternative for a scraper on a
    private network. With neither configured, /metrics is closed: figures about receivers are not public.
    """
    token: str = settings.METRICS_TOKEN
    networks = [ipaddress.ip_network(each, strict=False) for each in settings.METRICS_ALLOWED_NETWORKS]
    if not token and not networks:
        raise Refused(403, "Metrics are off: set METRICS_TOKEN (or METRICS_ALLOWED_NETWORKS) to scrape them.")
    if networks and _address_in(client_ip(request), networks):
        return
    if not token:
        raise Refused(403, "This address may not read the metrics (METRICS_ALLOWED_NETWORKS).")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Refused(401, "Send the metrics token: Authorization: Bearer <METRICS_TOKEN>.")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Refused(401, "Wrong metrics token.")


def _address_in(address: str | None, networks: list) -> bool:
    if not address:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)
