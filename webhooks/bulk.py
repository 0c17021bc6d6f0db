"""Bulk re-send: a webhook's deliveries in a status and time range, re-sent in the background with progress."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from environments.audit import record_audit
from environments.inputs import moment_problem

from . import queueing
from .models import Attempt, BulkResend, Delivery, Webhook
from .sending import send_now

BULK_CHUNK = 10


def _bulk_targets(job: BulkResend):
    deliveries = Delivery.objects.filter(
        webhook_id=job.webhook_id, status=job.status_filter, is_test=False, pk__lte=job.last_delivery_id
    )
    if job.since:
        deliveries = deliveries.filter(created_at__gte=job.since)
    if job.until:
        deliveries = deliveries.filter(created_at__lt=job.until)
    return deliveries


def start_bulk_resend(
    webhook: Webhook,
    *,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    status: str = Delivery.Status.FAILED,
    request=None,
    actor=None,
    actor_label: str = "",
) -> BulkResend:
    """Queue a background re-send of the webhook's deliveries in `status` created in [since, until)."""
    if webhook.state != Webhook.State.ACTIVE:
        raise ValueError(f"{webhook.name} is {webhook.get_state_display().lower()}: resume it before re-sending")
    if status not in (Delivery.Status.FAILED, Delivery.Status.SUCCEEDED, Delivery.Status.DISCARDED):
        raise ValueError("re-send deliveries that are failed, succeeded or discarded")
    for label, moment in (("start", since), ("end", until)):
        if moment is not None and (problem := moment_problem(moment)):
            raise ValueError(f"the {label} of the range {problem}")
    if since and until and since >= until:
        raise ValueError("the start of the range must be before its end")
    with transaction.atomic():
        job = BulkResend(webhook=webhook, since=since, until=until, status_filter=status)
        job.last_delivery_id = Delivery.objects.filter(webhook=webhook).aggregate(last=Max("pk"))["last"] or 0
        job.total = _bulk_targets(job).count()
        audit = record_audit(
            "delivery.bulk_resend_started",
            request=request,
            actor=actor,
            actor_label=actor_label or None,
            target=webhook,
            environment=webhook.environment,
            details={
                "status": status,
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None,
                "deliveries": job.total,
            },
        )
        job.created_by = audit.actor_label
        if job.total == 0:
            job.state, job.finished_at = BulkResend.State.DONE, timezone.now()
        job.save()
        if job.total:
            transaction.on_commit(lambda: queueing.queue(queueing.BULK_RESEND, job.pk), robust=True)
    return job


def bulk_resend_step(job_id: int) -> bool:
    """Re-send the next chunk of a bulk job. Returns True while more remains."""
    now = timezone.now()
    job = BulkResend.objects.select_related("webhook").filter(pk=job_id).first()
    if job is None or job.state == BulkResend.State.DONE or job.webhook.state != Webhook.State.ACTIVE:
        return False
    lease = now + datetime.timedelta(
        seconds=BULK_CHUNK * (job.webhook.timeout_seconds + 1) + settings.WEBHOOK_LEASE_MARGIN_SECONDS
    )
    claimed = (
        BulkResend.objects.filter(pk=job.pk)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .update(leased_until=lease, state=BulkResend.State.RUNNING)
    )
    if not claimed:
        return False
    chunk = list(
        _bulk_targets(job).filter(pk__gt=job.cursor_id).order_by("id").values_list("pk", flat=True)[:BULK_CHUNK]
    )
    succeeded = 0
    for delivery_id in chunk:
        attempt = send_now(delivery_id, trigger=Attempt.Trigger.RESEND, triggered_by=job.created_by)
        succeeded += bool(attempt and attempt.succeeded)
    more = len(chunk) == BULK_CHUNK
    update = {
        "done": job.done + len(chunk),
        "succeeded": job.succeeded + succeeded,
        "cursor_id": chunk[-1] if chunk else job.cursor_id,
        "leased_until": None,
    }
    if not more:
        update.update(state=BulkResend.State.DONE, finished_at=timezone.now())
    BulkResend.objects.filter(pk=job.pk).update(**update)
    return more


def resume_stalled_bulk_resends() -> None:
    """Queue again bulk jobs whose worker died or whose task was lost (the sweeper calls this)."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    stalled = BulkResend.objects.filter(
        state__in=[BulkResend.State.QUEUED, BulkResend.State.RUNNING],
        webhook__state=Webhook.State.ACTIVE,
        created_at__lt=stale,
    ).filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
    for job_id in stalled.values_list("pk", flat=True)[:100]:
        queueing.queue(queueing.BULK_RESEND, job_id)
