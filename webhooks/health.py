"""Health per webhook: deliveries, failures, waiting, and delay percentiles over a window."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import BooleanField, Case, Count, DurationField, ExpressionWrapper, F, Min, Q, When
from django.utils import timezone

from environments.models import Environment

from .models import Attempt, Delivery, Webhook
from .rollup import Hour, hourly


@dataclass
class WebhookHealth:
    webhook: Webhook
    deliveries: int
    succeeded: int
    failed: int
    waiting: int
    p50_delay_ms: int | None
    p95_delay_ms: int | None
    oldest_due_seconds: float = 0.0


def last_failure(webhook: Webhook) -> Attempt | None:
    """The latest failed attempt of a webhook (its last error), tests included: they reach the same receiver."""
    return Attempt.objects.filter(webhook=webhook, succeeded=False).order_by("-started_at").first()


P95_SAMPLE = 10_000


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
    Percentiles come from the latest P95_SAMPLE (10,000) successful deliveries in the window.
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
    queue = queues(webhooks)
    report = []
    for each in webhooks:
        row = counts.get(each.pk, {})
        delays = sorted(ms for _, ms in _delays(each, since=since, recent=since))
        report.append(
            WebhookHealth(
                webhook=each,
                deliveries=row.get("total", 0),
                succeeded=row.get("succeeded", 0),
                failed=row.get("failed", 0),
                waiting=queue.get(each.pk, Queue()).waiting,
                p50_delay_ms=_percentile(delays, 0.5),
                p95_delay_ms=_percentile(delays, 0.95),
                oldest_due_seconds=queue.get(each.pk, Queue()).oldest_due_seconds,
            )
        )
    return report


# --- The Overview: each webhook's condition, rates, delays and hours ------------------------------


@dataclass
class Summary:
    """What the Overview shows of one webhook, and what to do about it."""

    webhook: Webhook
    last_success: datetime.datetime | None
    waiting: int
    hours: list[Hour]  # the last 24, oldest first
    rate_24h: float | None
    rate_7d: float | None
    p95_24h_ms: int | None
    p95_7d_ms: int | None

    @property
    def received_24h(self) -> int:
        return sum(hour.succeeded for hour in self.hours)

    @property
    def failed_24h(self) -> int:
        return sum(hour.failed for hour in self.hours)

    @property
    def next_action(self) -> str:
        """recover (failing), enable (disabled), resume (paused), or nothing."""
        return {"failing": "recover", "disabled": "enable", "unverified": "verify", "paused": "resume"}.get(
            self.webhook.condition, ""
        )


def summaries(environment: Environment, now: datetime.datetime | None = None) -> list[Summary]:
    """Every webhook of the environment, those needing attention first (failing, disabled, paused)."""
    now = now or timezone.now()
    webhooks = list(environment.webhooks.with_condition_rank().order_by("condition_rank", "name"))
    ids = [webhook.pk for webhook in webhooks]
    week = hourly(ids, now - datetime.timedelta(days=7), now)
    waiting = _waiting(webhooks)
    result = []
    for webhook in webhooks:
        hours = week[webhook.pk]
        delays = _delays(webhook, since=now - datetime.timedelta(days=7), recent=now - datetime.timedelta(hours=24))
        result.append(
            Summary(
                webhook=webhook,
                last_success=Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED)
                .order_by("-id")
                .values_list("delivered_at", flat=True)
                .first(),
                waiting=waiting.get(webhook.pk, 0),
                hours=hours[-24:],
                rate_24h=_rate(hours[-24:]),
                rate_7d=_rate(hours),
                p95_24h_ms=_percentile(sorted(ms for is_recent, ms in delays if is_recent), 0.95),
                p95_7d_ms=_percentile(sorted(ms for _, ms in delays), 0.95),
            )
        )
    return result


@dataclass(frozen=True)
class Queue:
    """A webhook's deliveries waiting (pending or retrying), and how long the longest-due of them has been due."""

    waiting: int = 0
    oldest_due_seconds: float = 0.0


def queues(webhooks=None, now: datetime.datetime | None = None) -> dict[int, Queue]:
    """Per webhook id (of `webhooks`, or every one): its Queue. The Overview, `integration_health` and /metrics
    all read this one, so the three never disagree.

    Due means the next attempt time has passed; only an active webhook's are due (a paused or unverified one
    keeps its deliveries on purpose). Reads the partial index of waiting deliveries only.
    """
    now = now or timezone.now()
    waiting = Delivery.objects.filter(status__in=Delivery.WAITING, is_test=False)
    if webhooks is not None:
        waiting = waiting.filter(webhook__in=webhooks)
    rows = (
        waiting.values("webhook")
        .annotate(
            n=Count("id"),
            due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now, webhook__state=Webhook.State.ACTIVE)),
        )
        .values_list("webhook", "n", "due")
    )
    return {pk: Queue(n, (now - due).total_seconds() if due else 0.0) for pk, n, due in rows}


def _waiting(webhooks) -> dict[int, int]:
    """Deliveries waiting (pending or retrying) per webhook."""
    return {pk: queue.waiting for pk, queue in queues(webhooks).items()}


def _rate(hours: list[Hour]) -> float | None:
    attempts = sum(hour.attempts for hour in hours)
    return sum(hour.succeeded for hour in hours) / attempts if attempts else None


def _delays(webhook: Webhook, *, since: datetime.datetime, recent: datetime.datetime) -> list[tuple[bool, float]]:
    """(created after `recent`, ms from creation to receipt) of the latest P95_SAMPLE received since `since`.

    The latest P95_SAMPLE received are read newest first and those created
    before `since` dropped here (ids grow with creation, so that is the same
    set). With `since` in the WHERE clause instead, PostgreSQL misjudged how
    many rows it keeps when other webhooks hold older deliveries, and sorted
    all of this one's: 165 ms against 8.5 ms at 500,000 deliveries beside 5 M others.
    """
    rows = (
        Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED, is_test=False)
        .exclude(delivered_at=None)
        .order_by("-id")
        # Computed in the database: one duration per row is far cheaper to read than two timestamps.
        .annotate(
            delay=ExpressionWrapper(F("delivered_at") - F("created_at"), output_field=DurationField()),
            in_window=_created_since(since),
            is_recent=_created_since(recent),
        )
        .values_list("in_window", "is_recent", "delay")[:P95_SAMPLE]
    )
    return [(is_recent, delay.total_seconds() * 1000) for in_window, is_recent, delay in rows if in_window]


def _created_since(moment: datetime.datetime) -> Case:
    return Case(When(created_at__gte=moment, then=True), default=False, output_field=BooleanField())
