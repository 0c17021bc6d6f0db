"""Health per webhook: deliveries, failures, waiting, and delay percentiles over a window."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from environments.models import Environment

from .models import Attempt, Delivery, Webhook


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


def last_failure(webhook: Webhook) -> Attempt | None:
    """The latest failed attempt of a webhook (its last error), tests included: they reach the same receiver."""
    return Attempt.objects.filter(delivery__webhook=webhook, succeeded=False).order_by("-started_at").first()


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
