"""Payload erasure: what left an environment is kept as metadata only, by hand or by retention.

Erasing a delivery keeps its ids, times, status codes and event types, and removes
what carried data: its request body, every attempt's response body, and the data of
its events once no delivery still needs them (the outbox row keeps its id, type
and time). Waiting deliveries are never erased: they still have to be sent.
Events are the environments app's: `environments/outbox.py` erases the data of
every event past the payload retention, delivered or not, except those this
module names as still to be sent (`events_still_to_send`).
Work goes in small batches, each its own short transaction, so the sending path
is never held up for long.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from environments import outbox
from environments.audit import audited, record_audit
from environments.models import Environment, Event
from portal.actor import SYSTEM_ACTOR, Actor
from portal.inputs import range_problem

from .models import Attempt, Delivery, DeliveryEvent, Webhook

BATCH = 500
# Who the daily retention task's erasures are attributed to.
RETENTION_ACTOR = Actor.for_task("payload retention")


class ScopeError(ValueError):
    """A delivery, webhook or range that does not resolve. Never read as "everything": nothing is erased."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


class ScopeChanged(ValueError):
    """More payloads are in scope than the person confirmed: nothing was erased."""

    def __init__(self, found: int, expected: int):
        self.found, self.expected = found, expected
        super().__init__(
            f"{found} payload{'' if found == 1 else 's'} are in scope now, more than the {expected} you confirmed: "
            "nothing was erased; check the count and confirm again."
        )


def find_delivery(environment: Environment, reference: str) -> Delivery:
    """The delivery `reference` (its id, or its webhook-id `msg_…`) names in `environment`; ScopeError otherwise."""
    reference = reference.strip()
    shown = reference if len(reference) <= 60 else reference[:60] + "…"
    deliveries = Delivery.objects.select_related("webhook").filter(environment=environment)
    if not reference:
        raise ScopeError("delivery", "No delivery was named: give its id or its webhook-id (msg_…).")
    if reference.isascii() and reference.isdigit():
        found = deliveries.filter(pk=int(reference)).first() if len(reference) <= 18 else None
    elif reference.startswith("msg_"):
        found = deliveries.filter(message_id=reference).first()
    else:
        raise ScopeError("delivery", f"“{shown}” is not a delivery: give its id or its webhook-id (msg_…).")
    if found is None:
        raise ScopeError(
            "delivery",
            f"There is no delivery {shown} in {environment.name}: it was pruned, belongs to another environment, "
            "or is mistyped.",
        )
    return found


@dataclass(frozen=True)
class Scope:
    """Which deliveries: one, a webhook's in a time range, or an environment's in a time range."""

    environment: Environment
    webhook: Webhook | None = None
    delivery: Delivery | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def problem(self) -> str | None:
        """Why this scope does not name what it seems to (nothing is erased then), or None."""
        if self.webhook is not None and self.webhook.environment_id != self.environment.pk:
            return f"Webhook “{self.webhook.name}” is not in {self.environment.name}."
        if self.delivery is not None:
            if self.delivery.environment_id != self.environment.pk:
                return f"Delivery {self.delivery.message_id} is not in {self.environment.name}."
            if self.webhook is not None and self.delivery.webhook_id != self.webhook.pk:
                return (
                    f"Delivery {self.delivery.message_id} went to webhook “{self.delivery.webhook.name}”, "
                    f"not “{self.webhook.name}”."
                )
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

    def sentence(self) -> str:
        """What the scope names, in words: the confirmation, the result, the command and the audit say it."""
        if self.delivery is not None:
            what = f"delivery {self.delivery.message_id} to webhook “{self.delivery.webhook.name}”"
        elif self.webhook is not None:
            what = f"every delivery to webhook “{self.webhook.name}”"
        else:
            what = f"every delivery of every webhook in {self.environment.name}"
        if self.since is not None or self.until is not None:
            what += " created"
            if self.since is not None:
                what += f" from {_moment(self.since)}"
            if self.until is not None:
                what += f" before {_moment(self.until)}"
        return what

    def describe(self) -> dict:
        """The scope for the audit trail: only what was named, never a null standing for "all"."""
        details: dict = {"scope": "delivery" if self.delivery else "webhook" if self.webhook else "environment"}
        if self.delivery is not None:
            details["delivery"] = self.delivery.message_id
        webhook = self.webhook or (self.delivery.webhook if self.delivery else None)
        if webhook is not None:
            details["webhook"] = webhook.name
            details["webhook_id"] = webhook.pk
        if self.since is not None:
            details["since"] = self.since.isoformat()
        if self.until is not None:
            details["until"] = self.until.isoformat()
        details["what"] = self.sentence()
        return details


def _moment(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")


def erase_payloads(
    scope: Scope,
    *,
    expected: int | None = None,
    actor: Actor = SYSTEM_ACTOR,
    audit: bool = True,
) -> int:
    """Erase the payloads of every finished delivery in scope (irreversible). Returns how many deliveries.

    `expected` is the count the person confirmed: when more are in scope now
    (deliveries finished or arrived since), ScopeChanged and nothing is erased.
    """
    problem = scope.problem()
    if problem:
        raise ValueError(problem)
    ids = list(scope.deliveries().order_by("id").values_list("pk", flat=True))
    if expected is not None and len(ids) > expected:
        raise ScopeChanged(len(ids), expected)
    erased = sum(_erase_batch(ids[start : start + BATCH]) for start in range(0, len(ids), BATCH))
    if audit:
        record_audit(
            actor,
            "deliveries.payloads_erased",
            target=scope.webhook or (scope.delivery.webhook if scope.delivery else None) or scope.environment,
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
        erased += _erase_batch(ids)


def _erase_batch(ids: list[int]) -> int:
    """Erase these deliveries' payloads, in one short transaction; those now waiting or erased are skipped."""
    with transaction.atomic():
        now = timezone.now()
        # The check is part of the UPDATE, so a delivery re-queued since it was listed keeps its body.
        Delivery.objects.filter(pk__in=ids, payload_erased_at__isnull=True).exclude(status__in=Delivery.WAITING).update(
            body="", payload_erased_at=now
        )
        ids = list(Delivery.objects.filter(pk__in=ids, payload_erased_at=now).values_list("pk", flat=True))
        Attempt.objects.filter(delivery_id__in=ids).update(response_body="")
        # An event's data goes once no delivery that still keeps a payload carries it (the environment's
        # payload retention erases the rest: environments/outbox.py).
        kept = DeliveryEvent.objects.filter(event=OuterRef("pk"), delivery__payload_erased_at__isnull=True)
        outbox.erase_data(
            Event.objects.filter(pk__in=DeliveryEvent.objects.filter(delivery_id__in=ids).values("event_id")).exclude(
                Exists(kept)
            )
        )
    return len(ids)


def events_still_to_send(environment_id: int) -> QuerySet[DeliveryEvent, dict]:
    """The events a waiting delivery of the environment still has to send: they keep their data past the
    payload retention (named in settings.EVENT_DATA_HOLDS, asked by environments/outbox.py)."""
    return DeliveryEvent.objects.filter(
        delivery__environment_id=environment_id, delivery__status__in=Delivery.WAITING
    ).values("event_id")


def apply_payload_retention(now: datetime.datetime | None = None) -> int:
    """Erase payloads older than each environment's `payload_retention_days` (daily, from beat). Returns count."""
    now = now or timezone.now()
    total = 0
    for environment in Environment.objects.filter(payload_retention_days__isnull=False):
        cutoff = now - datetime.timedelta(days=environment.payload_retention_days)
        count = _erase(Scope(environment, until=cutoff).deliveries())
        if count:
            record_audit(
                RETENTION_ACTOR,
                "deliveries.payloads_erased",
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


def set_payload_retention(environment: Environment, days: int | None, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Keep this environment's payloads `days` days (None: as long as the deliveries). Audited."""
    if days is not None and not 1 <= days <= 36_500:
        raise ValueError("the payload retention is 1 to 36,500 days, or none")
    before = environment.payload_retention_days
    with audited(
        actor,
        "environment.payload_retention_changed",
        target=environment,
        environment=environment,
        details={"from": before, "to": days},
    ):
        environment.payload_retention_days = days
        environment.save(update_fields=["payload_retention_days"])
