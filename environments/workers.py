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
    """No worker has reported from its queue for longer than the limit; `last_seen` is None when none ever has.

    `process_alive`: a worker process still says it runs (from a thread, not the queue), so the queue is
    long or stuck behind slow work: deliveries are delayed, not stopped.
    """

    last_seen: datetime.datetime | None
    process_alive: bool = False

    @property
    def stopped(self) -> bool:
        """Nothing is being sent at all: no worker process is running."""
        return not self.process_alive


def silent_after() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.WORKER_SILENT_AFTER_SECONDS)


def silence(now: datetime.datetime | None = None) -> Silence | None:
    """The current silence of every worker, or None while one is running."""
    now = now or timezone.now()
    latest = WorkerHeartbeat.objects.aggregate(seen=Max("last_seen"), alive=Max("alive_at"))
    if latest["seen"] is not None and now - latest["seen"] <= silent_after():
        return None
    alive = latest["alive"] is not None and now - latest["alive"] <= silent_after()
    return Silence(last_seen=latest["seen"], process_alive=alive)


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
        latest = WorkerHeartbeat.objects.aggregate(seen=Max("last_seen"), alive=Max("alive_at"))
        WorkerHeartbeat.objects.update_or_create(hostname=hostname, defaults={"last_seen": now})
        last_seen, alive = latest["seen"], latest["alive"]
        if last_seen is None or now - last_seen <= silent_after():
            return None
        if alive is not None and now - alive <= silent_after():
            return None  # a worker ran all along, busy: its queue was slow, nothing had stopped
        return WorkerOutage.objects.create(started_at=last_seen, ended_at=now)


def report_alive(hostname: str, now: datetime.datetime | None = None) -> None:
    """Note that a worker process on `hostname` runs, from a thread of its own (see integration_tools/celery.py).

    Only a worker that has reported from its queue once has a row: this never makes one up.
    """
    WorkerHeartbeat.objects.filter(hostname=hostname).update(alive_at=now or timezone.now())
