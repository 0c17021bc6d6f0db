"""Celery tasks: thin wrappers. The database decides what is due; tasks only carry work.

Other modules queue these by name (`queueing.py`), so nothing imports this one.
"""

import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import bulk, carry_out, delivery_ranges, erasure, heartbeats, manual_sends, partitions, retention, rollup
from .delivery import queueing, sending, sweeper


@shared_task(name=queueing.DELIVER, ignore_result=True)
def deliver(delivery_id: int) -> None:
    """Send one delivery if it is due and its webhook has a free slot, then what else of it is due."""
    sending.deliver(delivery_id)


@shared_task(name=queueing.DRAIN, ignore_result=True)
def drain_webhook(webhook_id: int) -> None:
    """Send a webhook's due deliveries, oldest first, while it has a free slot."""
    sending.drain(webhook_id)


@shared_task(name=queueing.PROBE, ignore_result=True)
def probe_webhook(webhook_id: int) -> None:
    """Is a failing receiver back? Send its oldest waiting delivery early."""
    sweeper.probe(webhook_id)


@shared_task(name="webhooks.sweep", ignore_result=True)
def sweep_deliveries() -> None:
    """Queue due deliveries whose task was lost, probe failing webhooks, resume interrupted bulk re-sends,
    and queue again sends asked for by hand whose task was lost: the engine's round, then the features'."""
    now = timezone.now()
    sweeper.run(now)
    bulk.resume_stalled_bulk_resends()
    manual_sends.requeue_stale(now)


@shared_task(name=queueing.BULK_RESEND, ignore_result=True)
def run_bulk_resend(job_id: int) -> None:
    """Work through a bulk re-send in steps, recording each covered delivery's outcome as it has one."""
    countdown = bulk.bulk_resend_step(job_id)
    if countdown is not None:
        queueing.queue(queueing.BULK_RESEND, job_id, countdown=countdown)


@shared_task(name=queueing.MANUAL_SEND, ignore_result=True)
def carry_out_manual_send(send_id: int) -> None:
    """Carry out a test delivery, signature self-test, URL verification or re-send someone asked for."""
    carry_out.carry_out(send_id)


@shared_task(name="webhooks.verify", ignore_result=True)
def verify_webhook_asked_before_upgrade(webhook_id: int) -> None:
    """A verification queued by an earlier version (before sends by hand were recorded as ManualSends):
    ask it again the current way if the webhook still waits for one, so an upgrade loses none."""
    carry_out.ask_verification_left_over(webhook_id)


@shared_task(name="webhooks.prune", ignore_result=True)
def prune_old_deliveries() -> None:
    """Daily retention: payloads past their environment's payload retention are erased, then what is older
    than DELIVERY_RETENTION_DAYS goes: on PostgreSQL whole months of attempts and whole ranges of deliveries
    are dropped; on plain tables (SQLite) finished deliveries are deleted row by row."""
    erasure.apply_payload_retention()
    older_than = datetime.timedelta(days=settings.DELIVERY_RETENTION_DAYS)
    partitions.drop_expired(older_than)
    if delivery_ranges.is_partitioned():
        delivery_ranges.drop_expired(older_than)
    else:
        retention.prune_deliveries(older_than)


@shared_task(name="webhooks.partitions", ignore_result=True)
def make_attempt_partitions() -> None:
    """Hourly: make the months of attempt partitions ATTEMPT_PARTITIONS_AHEAD ahead, and the ranges of
    deliveries DELIVERY_RANGES_AHEAD ahead (PostgreSQL)."""
    partitions.ensure_ahead()
    delivery_ranges.ensure_ahead()


@shared_task(name="webhooks.roll_up", ignore_result=True)
def roll_up_attempts() -> None:
    """Count closed hours of attempts per webhook, for the Overview (see rollup.py)."""
    rollup.roll_up()


@shared_task(name="webhooks.heartbeats", ignore_result=True)
def send_heartbeats() -> None:
    """Every WEBHOOK_HEARTBEAT_SCAN_SECONDS: a heartbeat to each webhook that asked for them and was sent
    nothing for that long (see heartbeats.py)."""
    heartbeats.scan()


@shared_task(name=heartbeats.SEND_TASK, ignore_result=True)
def send_heartbeat(delivery_id: int) -> None:
    """Send one heartbeat, once: never retried."""
    heartbeats.send(delivery_id)
