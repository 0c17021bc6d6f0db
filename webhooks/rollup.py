"""Attempts counted per webhook and hour, so health over days costs the same at any volume.

An attempt is written once and never changes, so an hour, once closed, can be
counted once. `roll_up` counts every closed hour not counted yet (beat runs it
every few minutes); `hourly` reads those counts and counts the hours not yet
rolled up from the attempts themselves, so a figure is never stale. An hour is
closed `SETTLE` after it ends: an attempt is recorded when it finishes, up to a
timeout after it started.
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


def roll_up(now: datetime.datetime | None = None) -> int:
    """Count every closed hour not counted yet; return how many webhook-hours were written."""
    now = now or timezone.now()
    until = hour_of(now - SETTLE - datetime.timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS_MAX))
    with transaction.atomic():
        mark = RollupMark.objects.select_for_update().filter(name=NAME).first()
        since = mark.through if mark else hour_of(now - FIRST_REACH)
        if since >= until:
            return 0
        rows = [
            AttemptHour(webhook_id=row["webhook"], hour=row["hour"], succeeded=row["ok"], failed=row["bad"])
            for row in _counts(since, until)
        ]
        # Counted in the same transaction as the mark moves: two beats never count an hour twice.
        AttemptHour.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        RollupMark.objects.update_or_create(name=NAME, defaults={"through": until})
    return len(rows)


def hourly(webhook_ids: list[int], since: datetime.datetime, now: datetime.datetime) -> dict[int, list[Hour]]:
    """For each webhook, one `Hour` per hour from `since` to now (oldest first), zeros included."""
    first = hour_of(since)
    mark = RollupMark.objects.filter(name=NAME).values_list("through", flat=True).first()
    rolled_until = max(first, min(mark, hour_of(now) + datetime.timedelta(hours=1))) if mark else first
    counts: dict[int, dict[datetime.datetime, Hour]] = defaultdict(dict)
    for row in AttemptHour.objects.filter(webhook_id__in=webhook_ids, hour__gte=first, hour__lt=rolled_until):
        counts[row.webhook_id][hour_of(row.hour)] = Hour(hour_of(row.hour), row.succeeded, row.failed)
    wanted = set(webhook_ids)
    # Not filtered by webhook in SQL: on the few attempts since the last roll-up the planner then looks
    # deliveries up by key, instead of reading every delivery of the webhook to join them.
    for row in _counts(rolled_until, now + datetime.timedelta(seconds=1)):
        if row["webhook"] in wanted:
            counts[row["webhook"]][hour_of(row["hour"])] = Hour(hour_of(row["hour"]), row["ok"], row["bad"])
    hours = []
    moment = first
    while moment <= hour_of(now):
        hours.append(moment)
        moment += datetime.timedelta(hours=1)
    return {pk: [counts[pk].get(hour, Hour(hour)) for hour in hours] for pk in webhook_ids}


def _counts(since: datetime.datetime, until: datetime.datetime, webhook_ids: list[int] | None = None):
    attempts = Attempt.objects.filter(started_at__gte=since, started_at__lt=until).exclude(trigger=Attempt.Trigger.TEST)
    if webhook_ids is not None:
        attempts = attempts.filter(delivery__webhook_id__in=webhook_ids)
    return (
        attempts.annotate(hour=TruncHour("started_at", tzinfo=datetime.UTC))
        .values("hour", webhook=F("delivery__webhook_id"))
        .annotate(ok=Count("id", filter=Q(succeeded=True)), bad=Count("id", filter=Q(succeeded=False)))
        .order_by()
    )
