"""The failure throttle of the token endpoint: slow down guessing without letting anyone lock a client out.

A client_id is public, so failures counted per client_id alone would let
anybody lock the real client out with ten wrong secrets. Failures are counted
instead:

- per (client_id, address): `OAUTH_MAX_FAILURES_PER_CLIENT` in the window, then
  that address is refused for that client;
- per address: `OAUTH_MAX_FAILURES_PER_IP`, then that address is refused for
  every client;
- per client_id over all addresses: past `OAUTH_MAX_FAILURES_PER_CLIENT_TOTAL`,
  an address that has itself failed for the client in the window is refused,
  so guessing from many addresses gets one guess per address per window.

An address that has not failed is never refused, so the real client keeps
working while someone else guesses. A refusal lasts until the oldest counted
failure leaves the window. Checks and the failure they lead to are made under
locks on the address and the client_id (`hold`), so the limits are exact under
concurrency: the tenth failure is the last one let through, never the eleventh.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone

from portal.throttling import hold_keys, wait_after

from .models import AuthFailure

# The first key of our advisory locks on the token endpoint (webhooks use 4711).
_LOCK_NAMESPACE = 4712


def hold(client_id: str, ip: str | None) -> None:
    """Lock the address, then the client_id, until the current transaction ends (`portal.throttling`)."""
    hold_keys(_LOCK_NAMESPACE, (f"ip:{ip}", f"client:{client_id[:64]}"))


def throttle_delay(client_id: str, ip: str | None) -> int:
    """Seconds until this address may try this client_id again; 0 if now."""
    window = datetime.timedelta(seconds=settings.OAUTH_FAILURE_WINDOW_SECONDS)
    now = timezone.now()
    failures = AuthFailure.objects.filter(at__gte=now - window).exclude(reason=AuthFailure.Reason.THROTTLED)
    client_id = client_id[:64]
    from_here = failures.filter(client_id=client_id, ip=ip)
    delay = max(
        wait_after(from_here, settings.OAUTH_MAX_FAILURES_PER_CLIENT, window, now),
        wait_after(failures.filter(ip=ip), settings.OAUTH_MAX_FAILURES_PER_IP, window, now),
    )
    if from_here.exists():
        delay = max(
            delay,
            wait_after(failures.filter(client_id=client_id), settings.OAUTH_MAX_FAILURES_PER_CLIENT_TOTAL, window, now),
        )
    return delay
