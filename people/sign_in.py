"""Signing in with a password: the failure throttle, the record of attempts, and their audit.

The throttle has the token endpoint's design (credentials/throttle.py), so nobody can lock a person out:
failures are counted

- per (account, address): `LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS` in the window, then that address is
  refused for that account;
- per address: `LOGIN_MAX_FAILURES_PER_IP`, then that address is refused for every account;
- per account over all addresses: past `LOGIN_MAX_FAILURES_PER_ACCOUNT`, an address that has itself failed
  for the account in the window is refused, so guessing from many addresses gets one guess per address.

An address that has not failed for an account is never refused for it, so the real person signs in from
their own browser while someone else guesses. A refused attempt never reaches the password hasher.

The audit trail gets one row per successful sign-in, and failures summarised (`summarise_failure`): a row at
the 1st, 10th, 100th... failure of an account from an address in a window, so guessing cannot flood it.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit
from portal import throttling
from portal.actor import Actor
from portal.throttling import hold_keys, wait_after

from .models import FailureTally, SignInAttempt

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_LOCK_NAMESPACE = 4713  # advisory locks: webhooks use 4711, the token endpoint 4712
# How many of a person's latest sign-ins their security page lists (kept past the retention: people/retention.py).
RECENT_SIGN_INS = 20
# The label under which failures for usernames that are no account are summarised together.
UNKNOWN_ACCOUNT = "(no such account)"


def normalised(username: str) -> str:
    return username.strip().lower()[:150]


def hold(username: str, ip: str | None) -> None:
    """Lock the address, then the account, until the transaction ends, so the limits are exact under
    concurrency (the fifth failure is the last let through, never the sixth)."""
    hold_keys(_LOCK_NAMESPACE, (f"ip:{ip}", f"account:{username}"))


def throttle_delay(username: str, ip: str | None) -> int:
    """Seconds until this address may try this account again; 0 if now."""
    window = datetime.timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
    now = timezone.now()
    failures = SignInAttempt.objects.filter(succeeded=False, at__gte=now - window)
    from_here = failures.filter(username=username, ip=ip)
    limits = [
        (from_here, settings.LOGIN_MAX_FAILURES_PER_ACCOUNT_AND_ADDRESS),
        (failures.filter(ip=ip), settings.LOGIN_MAX_FAILURES_PER_IP),
    ]
    if from_here.exists():
        limits.append((failures.filter(username=username), settings.LOGIN_MAX_FAILURES_PER_ACCOUNT))
    return max(wait_after(counted, limit, window, now) for counted, limit in limits)


def record_success(actor: Actor, user: User) -> None:
    """`user` signed in with their password (`actor`: them, from where): one attempt row and one audit event."""
    SignInAttempt.objects.create(
        username=normalised(user.get_username()),
        user=user,
        ip=actor.ip,
        user_agent=actor.user_agent[:512],
        succeeded=True,
    )
    record_audit(actor, "sign_in.succeeded", target=user)


def record_failure(username: str, actor: Actor, *, user=None, refused: bool = False) -> None:
    """A wrong password (counted by the throttle) or a refused attempt (not counted), summarised in the trail.

    Every username that is no account is summarised as one (`UNKNOWN_ACCOUNT`, the row naming the one tried):
    a new made-up name per attempt would otherwise open a new count, and an audit row, each time."""
    if not refused:
        SignInAttempt.objects.create(
            username=username, user=user, ip=actor.ip, user_agent=actor.user_agent[:512], succeeded=False
        )
    User = get_user_model()
    known = User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).exists()
    summarise_failure(
        actor,
        "sign_in.refused" if refused else "sign_in.failed",
        username if known else UNKNOWN_ACCOUNT,
        "refused" if refused else "failures",
        details={} if known else {"username": username},
    )


def summarise_failure(actor: Actor, action: str, label: str, counter: str, *, details: dict | None = None) -> int:
    """Count one more failure for (`action`, `label`, address) in the current window; the audit trail gets a
    row at the 1st, 10th, 100th... of the window (with `details`), so a flood of failures writes a handful of
    rows. Returns the count so far."""
    window_start = throttling.window_start(timezone.now(), settings.LOGIN_FAILURE_WINDOW_SECONDS)
    with transaction.atomic():
        tally, _ = FailureTally.objects.select_for_update().get_or_create(
            action=action, label=label[:255], ip=actor.ip, window_start=window_start
        )
        tally.count += 1
        tally.save(update_fields=["count"])
        if throttling.worth_an_audit_row(tally.count):
            record_audit(
                actor,
                action,
                target_label=label,
                details={
                    **(details or {}),
                    counter: 1,
                    "in_window_so_far": tally.count,
                    "window_started": window_start.isoformat(),
                },
            )
    return tally.count


def recent_sign_ins(user, limit: int = RECENT_SIGN_INS) -> list[SignInAttempt]:
    """The person's latest sign-ins, good and bad, newest first (for their security page)."""
    return list(SignInAttempt.objects.filter(username=normalised(user.get_username())).order_by("-at")[:limit])


def record_second_factor(actor: Actor, factor: str) -> None:
    """The signed-in person passed their second factor (`factor` says which kind)."""
    record_audit(actor, "sign_in.second_factor", target=actor.user, details={"factor": factor})
