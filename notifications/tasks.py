"""Celery task: the periodic scan (every NOTIFICATIONS_SCAN_SECONDS, from beat)."""

from celery import shared_task

from . import outbox


@shared_task(name="notifications.scan", ignore_result=True)
def scan() -> None:
    """Tell people what happened since the last scan; safe to run on many workers at once."""
    outbox.scan()
