"""Bulk re-send: a webhook's deliveries in a status and time range, re-sent in the background with progress."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from environments.audit import record_audit
from environments.inputs import length_problem, moment_problem

from . import queueing
from .history import carrying
from .models import Attempt, BulkResend, Delivery, Webhook
from .sending import send_now

BULK_CHUNK = 10

# What a bulk job may take: "recover" (failed, or waiting for a retry after a failure) or one finished status.
RECOVER = BulkResend.RECOVER
STATUS_CHOICES = {
    RECOVER: "failed or waiting for a retry",
    Delivery.Status.FAILED: "failed",
    Delivery.Status.SUCCEEDED: "succeeded",
    Delivery.Status.DISCARDED: "discarded",
}
_STATUSES = {
    RECOVER: (Delivery.Status.FAILED, Delivery.Status.RETRYING),
    Delivery.Status.FAILED: (Delivery.Status.FAILED,),
    Delivery.Status.SUCCEEDED: (Delivery.Status.SUCCEEDED,),
    Delivery.Status.DISCARDED: (Delivery.Status.DISCARDED,),
}


@dataclass(frozen=True)
class Selection:
    """Which deliveries of a webhook a bulk re-send takes: a status choice, a time range, an event type."""

    webhook: Webhook
    status: str = RECOVER
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    event_type: str = ""

    @classmethod
    def of(cls, job: BulkResend) -> Selection:
        """What a bulk job was asked to re-send."""
        return cls(job.webhook, status=job.status_filter, since=job.since, until=job.until, event_type=job.event_type)

    def problem(self) -> str | None:
        """Why this selection cannot be re-sent, as a sentence fragment; None when it can."""
        if self.webhook.state != Webhook.State.ACTIVE:
            return f"{self.webhook.name} is {self.webhook.get_state_display().lower()}: resume it before re-sending"
        if self.status not in STATUS_CHOICES:
            return "re-send deliveries that are failed or waiting, failed, succeeded or discarded"
        for label, moment in (("start", self.since), ("end", self.until)):
            if moment is not None and (problem := moment_problem(moment)):
                return f"the {label} of the range {problem}"
        if self.since and self.until and self.since >= self.until:
            return "the start of the range must be before its end"
        if problem := length_problem(self.event_type, BulkResend, "event_type"):
            return f"the event type {problem}"
        return None

    def in_range(self) -> QuerySet[Delivery]:
        """The webhook's deliveries (not tests) in the range and of the event type, whatever their status."""
        deliveries = Delivery.objects.filter(webhook=self.webhook, is_test=False)
        if self.since:
            deliveries = deliveries.filter(created_at__gte=self.since)
        if self.until:
            deliveries = deliveries.filter(created_at__lt=self.until)
        if self.event_type:
            deliveries = deliveries.filter(carrying(self.event_type))
        return deliveries

    def targets(self) -> QuerySet[Delivery]:
        # A delivery whose payload was erased has nothing left to send.
        return self.in_range().filter(status__in=_STATUSES[self.status], payload_erased_at__isnull=True)


@dataclass
class Preview:
    """What a bulk re-send would do, for its confirmation: how many, by status, and why none."""

    total: int
    by_status: dict[str, int]
    why_none: str


def preview(selection: Selection) -> Preview:
    """Count what `selection` would re-send; when nothing, say why in a sentence."""
    if problem := selection.problem():
        return Preview(total=0, by_status={}, why_none=problem[:1].upper() + problem[1:] + ".")
    counts = dict(selection.in_range().values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_status = {status: counts.get(status, 0) for status in _STATUSES[selection.status]}
    total = sum(by_status.values())
    why = ""
    if not total:
        others = [f"{n} {Delivery.Status(status).label.lower()}" for status, n in sorted(counts.items()) if n]
        why = f"Nothing to re-send: no delivery in this range is {STATUS_CHOICES[selection.status]}" + (
            f" ({', '.join(others)})." if others else "; there are no deliveries in it at all."
        )
    return Preview(total=total, by_status=by_status, why_none=why)


def start_bulk_resend(selection: Selection, *, request=None, actor=None, actor_label: str = "") -> BulkResend:
    """Queue a background re-send, oldest first with the original webhook-id, of the selected deliveries.

    "recover" (the default status) takes every delivery that failed or waits for a retry in the range.
    Raises ValueError with the reason when the selection cannot be re-sent.
    """
    if problem := selection.problem():
        raise ValueError(problem)
    webhook, since, until = selection.webhook, selection.since, selection.until
    with transaction.atomic():
        job = BulkResend(
            webhook=webhook,
            since=since,
            until=until,
            status_filter=selection.status,
            event_type=selection.event_type,
        )
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
                "status": selection.status,
                "event_type": selection.event_type or None,
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


def _bulk_targets(job: BulkResend) -> QuerySet[Delivery]:
    # Only what existed when the job was asked for: later failures are not swept in.
    return Selection.of(job).targets().filter(pk__lte=job.last_delivery_id)


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
