"""Whether a background worker is running: its heartbeats, and the outages between them.

A worker reports in every WORKER_HEARTBEAT_SECONDS (a beat task, so a report proves the
queue is consumed). When none has reported for WORKER_SILENT_AFTER_SECONDS, nothing is
being sent: every page says so (the banner in templates/base.html) and `integration_health`
exits 1. The first report after such a silence records the outage, so Admins are told
how long it lasted (notifications/occasions.py).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .models import WorkerHeartbeat, WorkerOutage


@dataclass(frozen=True)
class Silence:
    """No worker has reported for longer than the limit; `last_seen` is None when none ever has."""

    last_seen: datetime.datetime | None


def silent_after() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.WORKER_SILENT_AFTER_SECONDS)


def silence(now: datetime.datetime | None = None) -> Silence | None:
    """The current silence of every worker, or None while one is running."""
    now = now or timezone.now()
    last_seen = WorkerHeartbeat.objects.aggregate(latest=Max("last_seen"))["latest"]
    if last_seen is not None and now - last_seen <= silent_after():
        return None
    return Silence(last_seen=last_seen)


def worker_status(now: datetime.datetime | None = None) -> list[dict]:
    """The latest heartbeats of Celery workers, and whether each is alive (the Overview's list)."""
    now = now or timezone.now()
    return [
        {"hostname": beat.hostname, "last_seen": beat.last_seen, "alive": now - beat.last_seen <= silent_after()}
        for beat in WorkerHeartbeat.objects.order_by("-last_seen")[:5]
    ]


def report_in(hostname: str, now: datetime.datetime | None = None) -> WorkerOutage | None:
    """Note that `hostname` runs tasks; returns the outage this report ends, if every worker had gone silent."""
    now = now or timezone.now()
    with transaction.atomic():
        # One report at a time decides whether an outage ended, so two workers coming back record it once.
        list(WorkerHeartbeat.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        last_seen = WorkerHeartbeat.objects.aggregate(latest=Max("last_seen"))["latest"]
        WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"last_seen": now})
        if last_seen is None or now - last_seen <= silent_after():
            return None
        return WorkerOutage.objects.create(started_at=last_seen, ended_at=now)
