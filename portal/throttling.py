"""What the failure throttles share (the token endpoint's, credentials/throttle.py, and sign-in's,
people/sign_in.py): exact counts under concurrency, the wait a limit imposes, and the pruning of the rows
they count (a flood of failures writes a row each, so nothing else bounds those tables)."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet


def hold_keys(namespace: int, keys: Iterable[str]) -> None:
    """Take PostgreSQL advisory locks on `keys`, in the order given, until the current transaction ends.

    Callers always give them in one order (address first), so two requests never wait on each other in a
    circle. SQLite needs nothing: its transactions here are IMMEDIATE, one writer at a time.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [namespace, key])


def wait_after(failures: QuerySet, limit: int, window: datetime.timedelta, now: datetime.datetime) -> int:
    """Seconds until fewer than `limit` of `failures` (rows with an `at` time) lie in the window; 0 if now."""
    recent = list(failures.order_by("-at").values_list("at", flat=True)[:limit])
    if len(recent) < limit:
        return 0
    # Allowed again once the oldest of the last `limit` failures leaves the window.
    return max(1, math.ceil((recent[-1] + window - now).total_seconds()))


def window_start(now: datetime.datetime, seconds: int) -> datetime.datetime:
    """The start of the fixed window of `seconds` (aligned to the epoch) that holds `now`."""
    return datetime.datetime.fromtimestamp(now.timestamp() // seconds * seconds, tz=datetime.UTC)


def worth_an_audit_row(count: int) -> bool:
    """Whether the `count`th repeated failure of a window gets its own audit row: the 1st, 10th, 100th...

    So a flood of failures writes a handful of rows (each with the count so far), never one each."""
    while count % 10 == 0 and count > 1:
        count //= 10
    return count == 1


def failures_kept_since(now: datetime.datetime) -> datetime.datetime:
    """The age past which failure rows are pruned: AUTH_FAILURE_RETENTION_DAYS ago, and never within what their
    readers look back over (a throttle's window; the Overview's and the metrics' day)."""
    kept = max(
        datetime.timedelta(days=settings.AUTH_FAILURE_RETENTION_DAYS),
        datetime.timedelta(days=1),
        datetime.timedelta(seconds=max(settings.LOGIN_FAILURE_WINDOW_SECONDS, settings.OAUTH_FAILURE_WINDOW_SECONDS)),
    )
    return now - kept


def delete_in_batches(rows: QuerySet, *, batch: int = 5000) -> int:
    """Delete `rows` (ordered so the oldest come first, on an index) `batch` at a time, each in its own short
    statement, so pruning a flood's millions holds no lock for long. Returns how many went."""
    deleted = 0
    while ids := list(rows.values_list("pk", flat=True)[:batch]):
        rows.model._default_manager.filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted
