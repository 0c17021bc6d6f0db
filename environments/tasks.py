"""Background jobs of the environments app."""

import socket

from celery import shared_task

from .workers import report_in


@shared_task(name="environments.tasks.record_worker_heartbeat", ignore_result=True)
def record_worker_heartbeat(hostname: str | None = None) -> None:
    """Note that the queue of the worker on `hostname` is consumed (sent by that worker's own thread, so beat
    need not run); pages and `integration_health` read it."""
    report_in(hostname or socket.gethostname())


@shared_task(name="environments.sequence", ignore_result=True)
def sequence_streams() -> int:
    """Give positions to committed events nobody has read yet (readers place what they read themselves)."""
    from .stream import sequence_all

    return sequence_all()


@shared_task(name="environments.retention", ignore_result=True)
def apply_event_retention() -> None:
    """Hourly: erase event data past each environment's payload retention, prune streams past their event
    retention, and drop test events nothing references (environments/outbox.py)."""
    from .outbox import apply_retention

    apply_retention()
