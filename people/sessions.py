"""Open sessions: each signed-in browser is recorded (`OpenSession`) so its person can see and end it, and so
an idle or too-old session, or one ended elsewhere, is refused at its next request (`SessionGateMiddleware`).
"""

from __future__ import annotations

import contextlib
import datetime
from importlib import import_module
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db.models import Q
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from portal.client_address import client_ip

from .models import OpenSession

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# The last-seen time is written at most this often: a page's requests cost no write each.
SEEN_EVERY = datetime.timedelta(seconds=30)


@receiver(user_logged_in)
def open_session(sender, request: HttpRequest, user: User, **kwargs) -> None:
    """Record the browser that just signed in."""
    if request is None:
        return
    if not request.session.session_key:
        # Signing in over another person's session flushes it: the new session has no key until saved.
        request.session.save()
    OpenSession.objects.update_or_create(
        session_key=request.session.session_key,
        defaults={
            "user": user,
            "ip": client_ip(request) if "REMOTE_ADDR" in request.META else None,
            "user_agent": request.META.get("HTTP_USER_AGENT", "")[:512],
        },
    )


@receiver(user_logged_out)
def close_session(sender, request: HttpRequest, user, **kwargs) -> None:
    """Signing out removes the browser from its person's list."""
    if request is not None and request.session.session_key:
        OpenSession.objects.filter(session_key=request.session.session_key).delete()


def rekey(old_key: str | None, new_key: str | None) -> None:
    """The same browser's session under the new key Django gave it (a password change cycles the key)."""
    if old_key and new_key and old_key != new_key:
        OpenSession.objects.filter(session_key=old_key).update(session_key=new_key)


def end_session(user: User, session_key: str) -> bool:
    """End one of `user`'s sessions (from any browser); False when it is not theirs or already over."""
    ended = OpenSession.objects.filter(user=user, session_key=session_key).delete()[0] > 0
    if ended:
        _session_store(session_key).delete()
    return ended


def end_all_sessions(user: User, *, keep: str | None = None) -> int:
    """End every session of `user` but `keep` (the one asking); how many ended."""
    keys = list(
        OpenSession.objects.filter(user=user).exclude(session_key=keep or "").values_list("session_key", flat=True)
    )
    for key in keys:
        _session_store(key).delete()
    OpenSession.objects.filter(session_key__in=keys).delete()
    return len(keys)


def sessions_of(user: User) -> list[OpenSession]:
    return list(OpenSession.objects.filter(user=user))


def refusal(open_session: OpenSession | None, now: datetime.datetime) -> str | None:
    """Why a session may not go on (ended elsewhere, idle too long, too old), or None."""
    if open_session is None:
        return "Your session was ended. Sign in again."
    if now - open_session.last_seen_at > datetime.timedelta(minutes=settings.SESSION_IDLE_MINUTES):
        return f"You were signed out after {settings.SESSION_IDLE_MINUTES} minutes without activity."
    if now - open_session.started_at > datetime.timedelta(hours=settings.SESSION_MAX_HOURS):
        return f"Sessions last at most {settings.SESSION_MAX_HOURS} hours. Sign in again."
    return None


# A lapsed session is kept this long after it lapsed, so that its browser's next request still says why it
# was signed out (idle, too old) rather than finding no session at all.
LAPSED_KEPT = datetime.timedelta(days=1)


def end_lapsed_sessions(now: datetime.datetime | None = None, *, batch: int = 1000) -> int:
    """End the sessions idle past SESSION_IDLE_MINUTES or older than SESSION_MAX_HOURS for over a day (the
    gate refuses them anyway), and clear the session store's expired rows; how many open sessions ended."""
    now = now or timezone.now()
    idle = datetime.timedelta(minutes=settings.SESSION_IDLE_MINUTES)
    lifetime = datetime.timedelta(hours=settings.SESSION_MAX_HOURS)
    lapsed = OpenSession.objects.filter(
        Q(last_seen_at__lt=now - idle - LAPSED_KEPT) | Q(started_at__lt=now - lifetime - LAPSED_KEPT)
    )
    ended = 0
    while keys := list(lapsed.values_list("session_key", flat=True)[:batch]):
        for key in keys:
            _session_store(key).delete()
        ended += OpenSession.objects.filter(session_key__in=keys).delete()[0]
    # Sessions that never signed anybody in (or whose browser left): the store's own expiry, where it keeps one.
    with contextlib.suppress(NotImplementedError):
        import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    return ended


def _session_store(session_key: str):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)
