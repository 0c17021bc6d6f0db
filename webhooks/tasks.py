"""Celery tasks: thin wrappers around the engine. The database decides what is due; tasks only carry work."""

import datetime

from celery import shared_task
from django.conf import settings

from . import engine, maintenance


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver(delivery_id: int) -> None:
    """Attempt one delivery if it is due and not being sent by another worker."""
    engine.attempt_delivery(delivery_id)


@shared_task(name="webhooks.drain", ignore_result=True)
def drain_webhook(webhook_id: int) -> None:
    """Send a webhook's waiting deliveries in order; queue itself again while more are due."""
    if engine.drain(webhook_id) >= 200:
        drain_webhook.delay(webhook_id)


@shared_task(name="webhooks.sweep", ignore_result=True)
def sweep_deliveries() -> None:
    """Re-enqueue due deliveries whose task was lost, and resume interrupted bulk re-sends."""
    engine.sweep()
    maintenance.resume_stalled_bulk_resends()


@shared_task(name="webhooks.bulk_resend", ignore_result=True)
def run_bulk_resend(job_id: int) -> None:
    """Work through a bulk re-send in chunks, recording progress as it goes."""
    if maintenance.bulk_resend_step(job_id):
        run_bulk_resend.delay(job_id)


@shared_task(name="webhooks.prune", ignore_result=True)
def prune_old_deliveries() -> None:
    """Daily retention: finished deliveries older than DELIVERY_RETENTION_DAYS go."""
    maintenance.prune_deliveries(datetime.timedelta(days=settings.DELIVERY_RETENTION_DAYS))
