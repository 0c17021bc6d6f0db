"""Retention of the token endpoint's failure rows: one a failed or throttled request, so a flood writes
millions a day; past AUTH_FAILURE_RETENTION_DAYS they go (the throttle reads minutes of them, the Overview a day)."""

from __future__ import annotations

import datetime

from django.utils import timezone

from portal.throttling import delete_in_batches, failures_kept_since

from .models import AuthFailure


def prune_auth_failures(now: datetime.datetime | None = None, *, batch: int = 5000) -> int:
    """Delete the failures older than the retention, oldest first, `batch` at a time; returns how many went."""
    cutoff = failures_kept_since(now or timezone.now())
    return delete_in_batches(AuthFailure.objects.filter(at__lt=cutoff).order_by("at"), batch=batch)
