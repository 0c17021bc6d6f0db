"""Bulk re-send: a webhook's deliveries in a status and time range, re-sent in the background with progress.

The job fixes which deliveries it covers when it is asked for (one item each),
then works through them oldest first. Progress and results are what the ledger
says became of each (`bulk_outcomes`), not what the job's own sends saw: a
delivery a retry or drain delivered first is not sent again, and counts as
delivered.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from environments.audit import record_audit
from portal.actor import SYSTEM_ACTOR, Actor
from portal.inputs import length_problem, moment_problem

from . import bulk_outcomes
from .delivery import queueing
from .delivery.ledger import lease_seconds
from .delivery.sending import send_now
from .history import carrying
from .models import Attempt, BulkResend, BulkResendItem, Delivery, Webhook

BULK_CHUNK = 10
# How soon a job looks again at deliveries someone else is sending: how often its progress moves then.
POLL_SECONDS = 1.0

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


def statuses_of(status_filter: str) -> tuple[str, ...]:
    """The delivery statuses a job's status choice takes."""
    return _STATUSES[status_filter]


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


def start_bulk_resend(selection: Selection, *, actor: Actor = SYSTEM_ACTOR) -> BulkResend:
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
        job.save()
        job.total = _cover(job)
        audit = record_audit(
            actor,
            "delivery.bulk_resend_started",
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


def _cover(job: BulkResend) -> int:
    """Write one item per delivery the job covers, in one statement. Returns how many."""
    # Only what existed when the job was asked for: later failures are not swept in.
    targets = Selection.of(job).targets().filter(pk__lte=job.last_delivery_id).values("pk")
    select_sql, params = targets.query.sql_with_params()
    item = BulkResendItem._meta
    columns = ", ".join(item.get_field(name).column for name in ("job", "delivery_id", "outcome"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {item.db_table} ({columns}) SELECT %s, covered.pk, '' FROM ({select_sql}) covered",  # noqa: S608
            [job.pk, *params],
        )
        return cursor.rowcount


def bulk_resend_step(job_id: int) -> float | None:
    """Work on a bulk job for one step. Returns seconds until its next step, or None when it is done (or
    another worker holds it).

    A step first gives every covered delivery that has reached an outcome that
    outcome (delivered by a retry meanwhile, erased, its webhook paused…), then
    re-sends up to BULK_CHUNK of those still to send that no one else is
    sending, each only while it still needs it, and settles each as soon as its
    attempt is recorded. Deliveries someone else is sending are looked at again
    POLL_SECONDS later. The job is done when every covered delivery has an outcome.
    """
    now = timezone.now()
    job = BulkResend.objects.select_related("webhook").filter(pk=job_id).first()
    if job is None or job.state == BulkResend.State.DONE:
        return None
    # The job's lease covers one attempt at a time and is renewed before each: a job whose worker died
    # is free again, for the sweeper to resume, as soon as a delivery's lease would be.
    lease = datetime.timedelta(
        seconds=lease_seconds(job.webhook.timeout_seconds, settings.WEBHOOK_LEASE_MARGIN_SECONDS)
    )
    held = now + lease
    claimed = (
        BulkResend.objects.filter(pk=job.pk)
        .exclude(state=BulkResend.State.DONE)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .update(leased_until=held, stepped_at=now, state=BulkResend.State.RUNNING)
    )
    if not claimed:
        return None
    bulk_outcomes.settle(job, wanted=statuses_of(job.status_filter), now=now)
    chunk = bulk_outcomes.to_send(job, now, BULK_CHUNK)
    sent = _send_chunk(job, chunk, held, lease)
    if sent is None:
        return None
    held, held_back = sent
    update = {"leased_until": None, "stepped_at": timezone.now()}
    more = bulk_outcomes.has_open(job)
    if not more:
        update.update(state=BulkResend.State.DONE, finished_at=timezone.now())
    if not BulkResend.objects.filter(pk=job.pk, leased_until=held).update(**update):
        return None  # another worker took the job over: it finishes it
    if not more:
        return None
    return 0 if len(chunk) == BULK_CHUNK and not held_back else POLL_SECONDS


def _send_chunk(
    job: BulkResend, chunk: list[int], held: datetime.datetime, lease: datetime.timedelta
) -> tuple[datetime.datetime, bool] | None:
    """Re-send a step's deliveries one after another, renewing the job's lease before each. Returns the
    lease's new end and whether any went unanswered for now; None when another worker took the job."""
    wanted = statuses_of(job.status_filter)
    sendable = bulk_outcomes.sendable_statuses(wanted)
    held_back = False
    for delivery_id in chunk:
        moment = timezone.now()
        # Renewed only while this worker still holds it (its lease value is its token): if a slow step let it
        # lapse and another worker took the job, this one stops rather than both sending.
        renewed = BulkResend.objects.filter(pk=job.pk, leased_until=held).update(
            leased_until=moment + lease, stepped_at=moment
        )
        if not renewed:
            return None
        held = moment + lease
        # Oldest first, and a waiting one only at the head of its line: an ordered webhook's order holds
        # through a recovery.
        attempt = send_now(
            delivery_id,
            trigger=Attempt.Trigger.RESEND,
            triggered_by=job.created_by,
            while_status=sendable,
            in_line=True,
            # A slow answer waits on an I/O thread and is recorded when it comes: settled on a later step.
            may_park=True,
        )
        # Whatever happened (sent, or found delivered or taken by another worker), the ledger says it.
        bulk_outcomes.settle(job, wanted=wanted, delivery_ids=[delivery_id])
        if attempt is None:
            # Not answered yet (its answer awaited, or no slot free): look again in a moment, not at once; in
            # an ordered webhook the next waits for it.
            held_back = True
            if job.webhook.ordering != Webhook.Ordering.NONE:
                break
    return held, held_back


def resume_stalled_bulk_resends() -> None:
    """Queue again bulk jobs no worker has worked on for WEBHOOK_REQUEUE_AFTER_SECONDS: their worker died or
    their task was lost (the periodic sweep in tasks.py calls this). A job of a paused or disabled webhook is
    resumed too: it ends, with what it could not send skipped and why."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    stalled = (
        BulkResend.objects.filter(state__in=[BulkResend.State.QUEUED, BulkResend.State.RUNNING])
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .filter(Q(stepped_at__lt=stale) | Q(stepped_at__isnull=True, created_at__lt=stale))
    )
    for job_id in stalled.values_list("pk", flat=True)[:100]:
        queueing.queue(queueing.BULK_RESEND, job_id)
