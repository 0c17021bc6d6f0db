"""Putting webhook work on the Celery queue, by task name, so that nothing here imports `tasks.py`.

The database decides what is due; a queued task only says "look now". If the
broker is down the work stays due in the database and the sweeper queues it.
"""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger(__name__)

DELIVER = "webhooks.deliver"
DRAIN = "webhooks.drain"
PROBE = "webhooks.probe"
BULK_RESEND = "webhooks.bulk_resend"
MANUAL_SEND = "webhooks.manual_send"


def queue(task_name: str, argument: int, countdown: float = 0) -> None:
    """Put one task on the queue; a broker failure is logged, never raised (the sweeper catches up)."""
    try:
        current_app.send_task(task_name, (argument,), countdown=countdown or None)
    except Exception:  # noqa: BLE001 - the database, not the broker, holds what is due
        logger.warning("could not queue %s(%s); the sweeper will pick it up", task_name, argument, exc_info=True)


def deliver(delivery_id: int, countdown: float = 0) -> None:
    """Send one delivery (and then whatever else of its webhook is due)."""
    queue(DELIVER, delivery_id, countdown)


def drain(webhook_id: int, copies: int = 1, countdown: float = 0) -> None:
    """Send a webhook's due deliveries, oldest first; `copies` tasks use that many of its sending slots."""
    for _ in range(max(copies, 0)):
        queue(DRAIN, webhook_id, countdown)


def manual_send(send_id: int, countdown: float = 0) -> None:
    """Carry out a send someone asked for (test, self-test, verification, re-send): see `manual_sends.py`."""
    queue(MANUAL_SEND, send_id, countdown)
