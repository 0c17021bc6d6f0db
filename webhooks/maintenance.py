"""Operations on many deliveries: bulk re-send, pruning old history, and health figures."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from environments.audit import record_audit
from environments.models import Environment

from .engine import attempt_delivery
from .models import Attempt, BulkResend, Delivery, Webhook

BULK_CHUNK = 10


# --- Bulk re-send ---------------------------------------------------------------------


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
    from .tasks import run_bulk_resend

    if webhook.state != Webhook.State.ACTIVE:
        raise ValueError(f"{webhook.name} is {webhook.get_state_display().lower()}: resume it before re-sending")
    if status not in (Delivery.Status.FAILED, Delivery.Status.SUCCEEDED, Delivery.Status.DISCARDED):
        raise ValueError("re-send deliveries that are failed, succeeded or discarded")
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
            transaction.on_commit(lambda: run_bulk_resend.delay(job.pk), robust=True)
    return job


def bulk_resend_step(job_id: int) -> bool:
    """Re-send the next chunk of a bulk job. Returns True while more remains."""
    now = timezone.now()
    job = BulkResend.objects.select_related("webhook").filter(pk=job_id).first()
    if job is None or job.state == BulkResend.State.DONE or job.webhook.state != Webhook.State.ACTIVE:
        return False
    lease = now + datetime.timedelta(seconds=BULK_CHUNK * (2 * job.webhook.timeout_seconds + 30))
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
        attempt = attempt_delivery(delivery_id, trigger=Attempt.Trigger.RESEND, triggered_by=job.created_by)
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
    from .tasks import run_bulk_resend

    now = timezone.now()
    stale = now - datetime.timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    stalled = BulkResend.objects.filter(
        state__in=[BulkResend.State.QUEUED, BulkResend.State.RUNNING],
        webhook__state=Webhook.State.ACTIVE,
        created_at__lt=stale,
    ).filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
    for job_id in stalled.values_list("pk", flat=True)[:100]:
        run_bulk_resend.delay(job_id)


# --- Retention ------------------------------------------------------------------------


def prune_deliveries(older_than: datetime.timedelta, *, batch: int = 5000) -> int:
    """Delete finished deliveries (and their attempts) created before now - `older_than`.

    Waiting deliveries are never pruned: that would lose events. Deletes in
    batches so that no single statement holds locks for long.
    """
    cutoff = timezone.now() - older_than
    finished = Delivery.objects.filter(created_at__lt=cutoff).exclude(status__in=Delivery.WAITING)
    deleted = 0
    while True:
        ids = list(finished.order_by("id").values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        with transaction.atomic():
            Delivery.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


# --- Health ---------------------------------------------------------------------------


@dataclass
class WebhookHealth:
    webhook: Webhook
    deliveries: int
    succeeded: int
    failed: int
    waiting: int
    p50_delay_ms: int | None
    p95_delay_ms: int | None

    @property
    def failure_rate(self) -> float:
        finished = self.succeeded + self.failed
        return self.failed / finished if finished else 0.0


def _percentile(sorted_values: list[float], fraction: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return int(sorted_values[index])


def health(
    environment: Environment | None = None,
    *,
    webhook: Webhook | None = None,
    window: datetime.timedelta = datetime.timedelta(hours=24),
) -> list[WebhookHealth]:
    """Per webhook over the window: deliveries, successes, failures, waiting, and p50/p95 delay.

    Delay is from the delivery's creation (the event's commit) to its successful receipt.
    Percentiles come from the latest 10,000 successful deliveries in the window.
    """
    since = timezone.now() - window
    webhooks = Webhook.objects.select_related("environment").order_by("environment__slug", "name")
    if environment is not None:
        webhooks = webhooks.filter(environment=environment)
    if webhook is not None:
        webhooks = webhooks.filter(pk=webhook.pk)
    counts = {
        row["webhook"]: row
        for row in Delivery.objects.filter(created_at__gte=since, is_test=False, webhook__in=webhooks)
        .values("webhook")
        .annotate(
            total=Count("id"),
            succeeded=Count("id", filter=Q(status=Delivery.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=Delivery.Status.FAILED) | Q(status=Delivery.Status.RETRYING)),
        )
    }
    waiting = dict(
        Delivery.objects.filter(status__in=Delivery.WAITING, is_test=False, webhook__in=webhooks)
        .values("webhook")
        .annotate(n=Count("id"))
        .values_list("webhook", "n")
    )
    report = []
    for each in webhooks:
        row = counts.get(each.pk, {})
        delays = sorted(
            (delivered - created).total_seconds() * 1000
            for created, delivered in Delivery.objects.filter(
                webhook=each, created_at__gte=since, status=Delivery.Status.SUCCEEDED, is_test=False
            )
            .order_by("-id")
            .values_list("created_at", "delivered_at")[:10000]
        )
        report.append(
            WebhookHealth(
                webhook=each,
                deliveries=row.get("total", 0),
                succeeded=row.get("succeeded", 0),
                failed=row.get("failed", 0),
                waiting=waiting.get(each.pk, 0),
                p50_delay_ms=_percentile(delays, 0.5),
                p95_delay_ms=_percentile(delays, 0.95),
            )
        )
    return report
