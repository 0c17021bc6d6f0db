"""Attempts counted per webhook and hour, so health over days costs the same at any volume.

An attempt is written once and never changes, so it can be counted once.
`roll_up` (beat, every few minutes) adds the attempts settled since its mark
to their webhook's hour and moves the mark; `hourly` reads those counts and
counts the few minutes since the mark from the attempts themselves, so a
figure is never stale. An attempt is settled `SETTLE` plus the longest timeout
after it started: it is recorded when it finishes.
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from .models import Attempt, AttemptHour, RollupMark

NAME = "attempt_hours"
SETTLE = datetime.timedelta(minutes=5)
# How far back a first roll-up reaches; older hours are read from attempts while they last.
FIRST_REACH = datetime.timedelta(days=8)


@dataclass
class Hour:
    """One webhook's attempts in one hour."""

    hour: datetime.datetime
    succeeded: int = 0
    failed: int = 0

    @property
    def attempts(self) -> int:
        return self.succeeded + self.failed


def hour_of(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)


def hours_from(first: datetime.datetime, now: datetime.datetime) -> list[datetime.datetime]:
    """The start of every hour from `first`'s to `now`'s, oldest first."""
    count = int((hour_of(now) - hour_of(first)) / datetime.timedelta(hours=1)) + 1
    return [hour_of(first) + datetime.timedelta(hours=index) for index in range(count)]


def roll_up(now: datetime.datetime | None = None) -> int:
    """Count the attempts settled since the last roll-up into their hours; return how many rows changed.

    The mark moves by the minute, not the hour, so what `hourly` must count live is
    only the last few minutes; the hour it falls in is topped up on the next run.
    """
    now = now or timezone.now()
    until = (now - SETTLE - datetime.timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS_MAX)).replace(
        second=0, microsecond=0
    )
    with transaction.atomic():
        mark = RollupMark.objects.select_for_update().filter(name=NAME).first()
        since = mark.through if mark else hour_of(now - FIRST_REACH)
        if since >= until:
            return 0
        rows = list(_counts(since, until))
        # Only the hour the previous mark fell in can have a row already: top it up, create the rest.
        topped = {
            (row.webhook_id, hour_of(row.hour)): row
            for row in AttemptHour.objects.filter(hour=hour_of(since)).select_for_update()
        }
        new = []
        for row in rows:
            existing = topped.get((row["webhook_id"], hour_of(row["hour"])))
            if existing is not None:
                AttemptHour.objects.filter(pk=existing.pk).update(
                    succeeded=F("succeeded") + row["ok"], failed=F("failed") + row["bad"]
                )
            else:
                new.append(
                    AttemptHour(webhook_id=row["webhook_id"], hour=row["hour"], succeeded=row["ok"], failed=row["bad"])
                )
        # Counted in the same transaction as the mark moves: two beats never count an attempt twice.
        AttemptHour.objects.bulk_create(new, batch_size=1000)
        RollupMark.objects.update_or_create(name=NAME, defaults={"through": until})
    return len(rows)


def hourly(webhook_ids: list[int], since: datetime.datetime, now: datetime.datetime) -> dict[int, list[Hour]]:
    """For each webhook, one `Hour` per hour from `since` to now (oldest first), zeros included."""
    first = hour_of(since)
    mark = RollupMark.objects.filter(name=NAME).values_list("through", flat=True).first()
    live_from = min(max(first, mark), now) if mark else first
    counts: dict[int, dict[datetime.datetime, Hour]] = defaultdict(dict)
    for row in AttemptHour.objects.filter(webhook_id__in=webhook_ids, hour__gte=first, hour__lt=live_from):
        counts[row.webhook_id][hour_of(row.hour)] = Hour(hour_of(row.hour), row.succeeded, row.failed)
    # Attempts carry their webhook: the (webhook, started_at) index reads only these webhooks' recent attempts.
    for row in _counts(live_from, now + datetime.timedelta(seconds=1)).filter(webhook_id__in=webhook_ids):
        hour = hour_of(row["hour"])
        counted = counts[row["webhook_id"]].setdefault(hour, Hour(hour))
        counted.succeeded += row["ok"]
        counted.failed += row["bad"]
    hours = hours_from(first, now)
    return {pk: [counts[pk].get(hour, Hour(hour)) for hour in hours] for pk in webhook_ids}


def _counts(since: datetime.datetime, until: datetime.datetime):
    # Tests and heartbeats say nothing of how the webhook's deliveries fare.
    attempts = Attempt.objects.filter(started_at__gte=since, started_at__lt=until).exclude(
        trigger__in=[Attempt.Trigger.TEST, Attempt.Trigger.HEARTBEAT]
    )
    return (
        attempts.annotate(hour=TruncHour("started_at", tzinfo=datetime.UTC))
        .values("hour", "webhook_id")
        .annotate(ok=Count("id", filter=Q(succeeded=True)), bad=Count("id", filter=Q(succeeded=False)))
        .order_by()
    )
