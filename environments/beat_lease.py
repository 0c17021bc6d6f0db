"""One beat at a time, however many are started: a lease row in the database that a beat takes or keeps on each
tick, and that another beat takes over once it has run out (its holder stopped, or its host was cut off)."""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from .models import BeatLease

_ROW = 1


def hold(holder: str, seconds: float, now: datetime.datetime | None = None) -> bool:
    """Take or renew the beat lease for `holder` for `seconds`; True when `holder` holds it now."""
    now = now or timezone.now()
    until = now + datetime.timedelta(seconds=seconds)
    # One statement decides: two beats renewing at once are serialised by the row's lock, and the second one
    # finds the lease taken and in date.
    taken = BeatLease.objects.filter(pk=_ROW).filter(Q(holder=holder) | Q(until__lt=now))
    if taken.update(holder=holder, until=until):
        return True
    if BeatLease.objects.filter(pk=_ROW).exists():
        return False
    try:
        with transaction.atomic():
            BeatLease.objects.create(pk=_ROW, holder=holder, until=until)
    except IntegrityError:
        return False  # another beat made the row first: it holds the lease
    return True


def release(holder: str) -> None:
    """Give the lease up (a beat stopping cleanly), so that another beat takes over at its next look."""
    BeatLease.objects.filter(pk=_ROW, holder=holder).update(until=timezone.now() - datetime.timedelta(seconds=1))
