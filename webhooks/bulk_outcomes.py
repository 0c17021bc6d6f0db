"""What became of each delivery a bulk re-send covers, read from the ledger, and how that is said.

A re-send job does not count its own sends: while it runs, retries, probes and
drains deliver the same deliveries (one success makes the rest of a failing
webhook's backlog due at once). Each delivery it covers gets one outcome, as
the delivery's own state and attempts say: delivered by the job, delivered
meanwhile by retries, failed again, or skipped and why. Progress is how many
have one, so it moves as deliveries arrive, whoever sends them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery
from django.utils import timezone

from .models import Attempt, BulkResend, BulkResendItem, Delivery, Webhook

Outcome = BulkResendItem.Outcome

# Why a delivery the job would send is skipped, by the webhook's state when the job reaches it.
_SKIPPED_BY_WEBHOOK_STATE = {
    Webhook.State.PAUSED: Outcome.PAUSED,
    Webhook.State.DISABLED: Outcome.DISABLED,
    Webhook.State.UNVERIFIED: Outcome.UNVERIFIED,
}
# A delivery in one of these statuses is not re-sent, unless the job was asked for that status.
_SKIPPED_BY_STATUS = {
    Delivery.Status.SUCCEEDED: Outcome.ALREADY_DELIVERED,
    Delivery.Status.DISCARDED: Outcome.DISCARDED,
}
_UPDATE_BATCH = 5000


def sendable_statuses(wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The statuses in which a job that was asked for `wanted` still sends a delivery it covers."""
    return tuple(status for status in Delivery.Status.values if status in wanted or status not in _SKIPPED_BY_STATUS)


@dataclass(frozen=True)
class LedgerState:
    """What the ledger says of one covered delivery, as far as its outcome goes."""

    status: str
    delivered_at: datetime.datetime | None
    payload_erased: bool
    in_flight: bool
    last_success_trigger: str | None
    failed_resend_since_job: bool


def outcome_of(state: LedgerState, *, job_started: datetime.datetime, wanted: tuple[str, ...], webhook_state: str):
    """The outcome of one covered delivery, or None while it has none (the job still has to send it, or
    someone is sending it now)."""
    if state.status == Delivery.Status.SUCCEEDED and state.delivered_at and state.delivered_at >= job_started:
        # Re-sends are the job's; a retry, probe or drain is the webhook's own sending.
        return Outcome.BY_JOB if state.last_success_trigger == Attempt.Trigger.RESEND else Outcome.MEANWHILE
    if state.failed_resend_since_job:
        return Outcome.FAILED_AGAIN
    if state.status not in sendable_statuses(wanted):
        return _SKIPPED_BY_STATUS[state.status]
    if state.payload_erased:
        return Outcome.PAYLOAD_ERASED
    if webhook_state in _SKIPPED_BY_WEBHOOK_STATE and not state.in_flight:
        return _SKIPPED_BY_WEBHOOK_STATE[webhook_state]
    return None


def settle(
    job: BulkResend,
    *,
    wanted: tuple[str, ...],
    delivery_ids: list[int] | None = None,
    now: datetime.datetime | None = None,
) -> int:
    """Give each covered delivery (of `delivery_ids`, or all) that has reached an outcome that outcome, once,
    and add it to the job's progress. `wanted` are the statuses the job was asked to re-send. Returns how
    many got one."""
    now = now or timezone.now()
    open_items = BulkResendItem.objects.filter(job=job, outcome="")
    if delivery_ids is not None:
        open_items = open_items.filter(delivery_id__in=delivery_ids)
    since_job = Attempt.objects.filter(delivery=OuterRef("pk"), started_at__gte=job.created_at)
    last_success = Attempt.objects.filter(delivery=OuterRef("pk"), succeeded=True).order_by("-number")
    rows = (
        Delivery.objects.filter(pk__in=open_items.values("delivery_id"))
        .annotate(
            last_success_trigger=Subquery(last_success.values("trigger")[:1]),
            failed_resend=Exists(since_job.filter(trigger=Attempt.Trigger.RESEND, succeeded=False)),
        )
        .values_list(
            "pk", "status", "delivered_at", "payload_erased_at", "leased_until", "last_success_trigger", "failed_resend"
        )
    )
    webhook_state = Webhook.objects.filter(pk=job.webhook_id).values_list("state", flat=True).first()
    found: dict[str, list[int]] = {}
    for pk, status, delivered_at, erased_at, leased_until, trigger, failed_resend in rows:
        state = LedgerState(
            status=status,
            delivered_at=delivered_at,
            payload_erased=erased_at is not None,
            in_flight=leased_until is not None and leased_until >= now,
            last_success_trigger=trigger,
            failed_resend_since_job=failed_resend,
        )
        outcome = outcome_of(state, job_started=job.created_at, wanted=wanted, webhook_state=webhook_state)
        if outcome:
            found.setdefault(outcome, []).append(pk)
    settled = delivered = 0
    with transaction.atomic():
        gone = open_items.filter(~Exists(Delivery.objects.filter(pk=OuterRef("delivery_id"))))
        settled += gone.update(outcome=Outcome.DELETED)
        for outcome, pks in found.items():
            for start in range(0, len(pks), _UPDATE_BATCH):
                # Only items still open: each is counted once however many workers settle at the same time.
                count = open_items.filter(delivery_id__in=pks[start : start + _UPDATE_BATCH]).update(outcome=outcome)
                settled += count
                delivered += count if outcome in BulkResendItem.DELIVERED else 0
        if settled:
            BulkResend.objects.filter(pk=job.pk).update(done=F("done") + settled, succeeded=F("succeeded") + delivered)
    return settled


def to_send(job: BulkResend, now: datetime.datetime, limit: int) -> list[int]:
    """The next covered deliveries without an outcome that no one is sending, oldest first."""
    open_ids = BulkResendItem.objects.filter(job=job, outcome="").values("delivery_id")
    deliveries = Delivery.objects.filter(pk__in=open_ids).lease_free(now).order_by("id")
    return list(deliveries.values_list("pk", flat=True)[:limit])


def has_open(job: BulkResend) -> bool:
    """Whether any delivery the job covers has no outcome yet."""
    return BulkResendItem.objects.filter(job=job, outcome="").exists()


# --- Counting and saying it ---------------------------------------------------------


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass(frozen=True)
class Outcomes:
    """A job's deliveries by outcome, with the words the page, the notification and the command use."""

    total: int
    counts: dict[str, int]

    @classmethod
    def of(cls, job: BulkResend) -> Outcomes:
        """Count the job's items by outcome (one query)."""
        rows = BulkResendItem.objects.filter(job=job).exclude(outcome="").values("outcome").annotate(n=Count("id"))
        counts = {row["outcome"]: row["n"] for row in rows}
        if not counts and job.done and not BulkResendItem.objects.filter(job=job).exists():
            # A job from before outcomes were kept: only its own sends were counted.
            counts = {Outcome.BY_JOB: job.succeeded, Outcome.FAILED_AGAIN: job.done - job.succeeded}
        return cls(total=job.total, counts=counts)

    def count(self, outcome: str) -> int:
        # Not __getitem__: templates would look every attribute up through it first.
        return self.counts.get(outcome, 0)

    @property
    def by_job(self) -> int:
        return self.count(Outcome.BY_JOB)

    @property
    def meanwhile(self) -> int:
        return self.count(Outcome.MEANWHILE)

    @property
    def delivered(self) -> int:
        return self.by_job + self.meanwhile

    @property
    def failed_again(self) -> int:
        return self.count(Outcome.FAILED_AGAIN)

    @property
    def skipped(self) -> int:
        return self.done - self.delivered - self.failed_again

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    @property
    def open(self) -> int:
        """Covered deliveries with no outcome yet."""
        return max(self.total - self.done, 0)

    @property
    def skipped_reasons(self) -> list[tuple[str, int]]:
        """Why deliveries were skipped, each reason with how many, in the order of `Outcome`."""
        skipped = [choice for choice in Outcome if choice not in (*BulkResendItem.DELIVERED, Outcome.FAILED_AGAIN)]
        return [(choice.label, self.count(choice)) for choice in skipped if self.count(choice)]

    @property
    def delivered_words(self) -> str:
        """ "30 delivered (27 by the job, 3 meanwhile by retries)"."""
        if self.by_job and self.meanwhile:
            return f"{self.delivered} delivered ({self.by_job} by the job, {self.meanwhile} meanwhile by retries)"
        if self.meanwhile:
            return f"{self.delivered} delivered meanwhile by retries"
        if self.by_job:
            return f"{self.delivered} delivered by the job"
        return "0 delivered"

    @property
    def skipped_words(self) -> str:
        """ "2 skipped (1 payload erased, 1 webhook paused)"."""
        reasons = ", ".join(f"{count} {label}" for label, count in self.skipped_reasons)
        return f"{self.skipped} skipped ({reasons})"

    def summary(self) -> str:
        """Every outcome so far in one sentence fragment: delivered, failed again, skipped, still open."""
        parts = [self.delivered_words]
        if self.failed_again:
            parts.append(f"{self.failed_again} failed again")
        if self.skipped:
            parts.append(self.skipped_words)
        if self.open:
            parts.append(f"{self.open} still without an outcome")
        return "; ".join(parts)

    def headline(self) -> str:
        """ "30 of 30 delivered": a subject line's worth."""
        return f"{self.delivered} of {self.total} delivered"


def covered(count: int) -> str:
    """ "1 delivery" / "30 deliveries"."""
    return _n(count, "delivery", "deliveries")
