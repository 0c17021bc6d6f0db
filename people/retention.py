"""Retention of sign-in records: attempts and failure tallies past AUTH_FAILURE_RETENTION_DAYS go, except
each person's last attempts, which their security page lists whatever their age."""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone

from portal.throttling import delete_in_batches, failures_kept_since

from .models import FailureTally, SignInAttempt
from .sign_in import RECENT_SIGN_INS, normalised


def prune_sign_in_records(now: datetime.datetime | None = None, *, batch: int = 5000) -> int:
    """Delete old sign-in attempts (but the listed ones) and old tallies, `batch` at a time; returns how many."""
    cutoff = failures_kept_since(now or timezone.now())
    attempts = SignInAttempt.objects.filter(at__lt=cutoff).exclude(pk__in=listed_attempts()).order_by("at")
    tallies = FailureTally.objects.filter(window_start__lt=cutoff).order_by("window_start")
    return delete_in_batches(attempts, batch=batch) + delete_in_batches(tallies, batch=batch)


def listed_attempts() -> list[int]:
    """The attempts security pages list: each person's last RECENT_SIGN_INS (a query a person, on their index)."""
    User = get_user_model()
    kept: list[int] = []
    for username in User.objects.values_list(User.USERNAME_FIELD, flat=True):
        newest = SignInAttempt.objects.filter(username=normalised(username)).order_by("-at")
        kept.extend(newest.values_list("pk", flat=True)[:RECENT_SIGN_INS])
    return kept
