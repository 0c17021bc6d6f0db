"""Payload erasure: what left an environment is kept as metadata only, by hand or by retention.

Erasing a delivery keeps its ids, times, status codes and event types, and removes
what carried data: its request body, every attempt's response body, and the data of
its events once no delivery still needs them (the outbox row keeps its id, type
and time). Waiting deliveries are never erased: they still have to be sent.
Work goes in small batches, each its own short transaction, so the sending path
is never held up for long.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from environments.audit import record_audit
from environments.inputs import range_problem
from environments.models import Environment, Event

from .models import Attempt, Delivery, DeliveryEvent, Webhook

BATCH = 500


@dataclass(frozen=True)
class Scope:
    """Which deliveries: one, a webhook's in a time range, or an environment's in a time range."""

    environment: Environment
    webhook: Webhook | None = None
    delivery: Delivery | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def problem(self) -> str | None:
        return range_problem(self.since, self.until)

    def _narrow(self, deliveries: QuerySet[Delivery]) -> QuerySet[Delivery]:
        deliveries = deliveries.filter(environment=self.environment)
        if self.delivery is not None:
            deliveries = deliveries.filter(pk=self.delivery.pk)
        if self.webhook is not None:
            deliveries = deliveries.filter(webhook=self.webhook)
        if self.since is not None:
            deliveries = deliveries.filter(created_at__gte=self.since)
        if self.until is not None:
            deliveries = deliveries.filter(created_at__lt=self.until)
        return deliveries

    def deliveries(self) -> QuerySet[Delivery]:
        """The deliveries in scope whose payloads can go: finished and not yet erased."""
        finished = Delivery.objects.exclude(status__in=Delivery.WAITING).filter(payload_erased_at__isnull=True)
        return self._narrow(finished)

    def waiting(self) -> int:
        """Deliveries in scope left alone because they still wait to be sent."""
        return self._narrow(Delivery.objects.filter(status__in=Delivery.WAITING)).count()

    def describe(self) -> dict:
        return {
            "webhook": self.webhook.name if self.webhook else None,
            "delivery": self.delivery.message_id if self.delivery else None,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


def erase_payloads(
    scope: Scope, *, request=None, actor=None, actor_label: str | None = None, audit: bool = True
) -> int:
    """Erase the payloads of every finished delivery in scope (irreversible). Returns how many deliveries."""
    problem = scope.problem()
    if problem:
        raise ValueError(problem)
    erased = _erase(scope.deliveries())
    if audit:
        record_audit(
            "deliveries.payloads_erased",
            request=request,
            actor=actor,
            actor_label=actor_label,
            target=scope.webhook or scope.environment,
            environment=scope.environment,
            details={**scope.describe(), "count": erased},
        )
    return erased


def _erase(deliveries: QuerySet[Delivery]) -> int:
    erased = 0
    while True:
        ids = list(deliveries.order_by("id").values_list("pk", flat=True)[:BATCH])
        if not ids:
            return erased
        with transaction.atomic():
            now = timezone.now()
            Delivery.objects.filter(pk__in=ids).update(body="", payload_erased_at=now)
            Attempt.objects.filter(delivery_id__in=ids).update(response_body="")
            # An event's data goes once no delivery that still keeps a payload carries it.
            kept = DeliveryEvent.objects.filter(event=OuterRef("pk"), delivery__payload_erased_at__isnull=True)
            Event.objects.filter(pk__in=DeliveryEvent.objects.filter(delivery_id__in=ids).values("event_id")).exclude(
                Exists(kept)
            ).update(data={})
        erased += len(ids)


def apply_payload_retention(now: datetime.datetime | None = None) -> int:
    """Erase payloads older than each environment's `payload_retention_days` (daily, from beat). Returns count."""
    now = now or timezone.now()
    total = 0
    for environment in Environment.objects.filter(payload_retention_days__isnull=False):
        cutoff = now - datetime.timedelta(days=environment.payload_retention_days)
        count = _erase(Scope(environment, until=cutoff).deliveries())
        if count:
            record_audit(
                "deliveries.payloads_erased",
                actor_type="system",
                actor_label="payload retention",
                target=environment,
                environment=environment,
                details={
                    "until": cutoff.isoformat(),
                    "retention_days": environment.payload_retention_days,
                    "count": count,
                },
            )
        total += count
    return total


def set_payload_retention(
    environment: Environment, days: int | None, *, request=None, actor=None, actor_label: str | None = None
) -> None:
    """Keep this environment's payloads `days` days (None: as long as the deliveries). Audited."""
    if days is not None and not 1 <= days <= 36_500:
        raise ValueError("the payload retention is 1 to 36,500 days, or none")
    before = environment.payload_retention_days
    with transaction.atomic():
        environment.payload_retention_days = days
        environment.save(update_fields=["payload_retention_days"])
        record_audit(
            "environment.payload_retention_changed",
            request=request,
            actor=actor,
            actor_label=actor_label,
            target=environment,
            environment=environment,
            details={"from": before, "to": days},
        )
