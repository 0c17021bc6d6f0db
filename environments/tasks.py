"""Background jobs of the environments app."""

import socket

from celery import shared_task

from .workers import report_in


@shared_task(name="environments.tasks.record_worker_heartbeat", ignore_result=True)
def record_worker_heartbeat() -> None:
    """Note that a worker is alive and consuming the queue; pages and `integration_health` read it."""
    report_in(socket.gethostname())
