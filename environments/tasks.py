"""Background jobs of the environments app."""

import socket

from celery import shared_task
from django.utils import timezone

from .models import WorkerHeartbeat


@shared_task(name="environments.tasks.record_worker_heartbeat", ignore_result=True)
def record_worker_heartbeat() -> None:
    """Note that a worker is alive and consuming the queue; the Overview page shows it."""
    WorkerHeartbeat.objects.update_or_create(hostname=socket.gethostname(), defaults={"last_seen": timezone.now()})
