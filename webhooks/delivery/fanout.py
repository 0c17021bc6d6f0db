"""Fan-out: inside the transaction that emits an event, write a delivery for every webhook that opted into it.

A webhook that batches (`max_events_per_request` > 1) gets the event added to
its newest delivery not yet sent, while that has room. On commit a task is
queued; if it is lost, the sweeper finds the delivery due in the database.

A delivery of an active, healthy webhook that sends one event per request is
leased here, in the event's transaction (`emit_event` runs listeners only
inside it), when one of the webhook's sending slots is free and nothing older
of it waits (`ledger.may_lease_at_fan_out`). Its body is rendered here too, so
its task reads it and sends at once without first claiming it: the round trip
a claim costs stays off the path from a change to its receiver. The lease
counts against the webhook's cap like any other; if the task is lost, the
lease runs out and the sweeper finds the delivery due.

A delivery not leased here gets a task too, unless, once the change has
committed, all its webhook's slots are taken: then their holders, which look
for due deliveries after they record, send it (`ledger.record`). Each such
task drains what else is due after its own delivery, so a transaction that
writes many records queues at most one per slot of each webhook, and asks
about a webhook's slots once, not per record.

Numbered deliveries: each webhook numbers the events it sends, contiguously
from 1, and each event carries its number as `"sequence"` (stored on
`DeliveryEvent.sequence`). The number is taken here, in the event's own
transaction, from the webhook's counter row (`WebhookSequence`, a table of its
own so that the workers' writes to Webhook rows never wait on it) with
`ledger.next_numbers`, which keeps the row locked until the transaction ends.
That is what the number rests on: a writer that rolls back gives its number
back (no gap), and the next writer of the same webhook waits until this one
commits (numbers in commit order). Its cost: writers that feed one webhook
serialise from their fan-out to their commit. One event's counters are locked
in webhook id order; a transaction writing several events may still take two
webhooks' counters in either order, and PostgreSQL then ends one of two such
writers as a deadlock (the writer may try again). Test sends never come here:
they have no number.
"""

from __future__ import annotations

import datetime
import uuid

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from environments.models import Event

from ..models import Delivery, DeliveryEvent, Webhook
from . import bodies, ledger, queueing


def new_message_id() -> str:
    """A `webhook-id`: the same for every attempt and re-send of a delivery."""
    return f"msg_{uuid.uuid4().hex}"


def fan_out(event: Event) -> None:
    """Write the deliveries of a new event for every webhook that opted into its type."""
    webhooks = [
        webhook
        for webhook in Webhook.objects.filter(environment_id=event.environment_id)
        if webhook.subscribes_to(event.type)
    ]
    if not webhooks:
        return
    now = timezone.now()
    after_commit = _AfterCommit.of_this_transaction()
    line = event.record_id or Delivery.SHARED_LINE
    for webhook in webhooks:
        if _orders_across_records(webhook, line):
            ledger.hold_commit_order(webhook.pk)  # first: what may be leased depends on older commits
    # Whether each may be leased is asked before the numbers are taken: a number's lock is held until the
    # commit, and writers feeding the webhook wait on it, so as little as possible comes after it.
    leased = {webhook.pk for webhook in webhooks if _may_lease(webhook, line, now, after_commit)}
    numbers = ledger.next_numbers(webhook.pk for webhook in webhooks)
    for webhook in webhooks:
        sequence = numbers[webhook.pk]
        delivery = _open_batch(webhook, event, line) if webhook.max_events_per_request > 1 else None
        if delivery is None:
            delivery = _new_delivery(webhook, event, sequence, line, now, after_commit, webhook.pk in leased)
        DeliveryEvent.objects.create(delivery=delivery, event=event, webhook=webhook, sequence=sequence)


def _orders_across_records(webhook: Webhook, line: uuid.UUID) -> bool:
    """Whether this delivery's place in its webhook's order depends on other records' changes: then the
    transaction must commit in the order its delivery's id says (`ledger.hold_commit_order`)."""
    if webhook.ordering == Webhook.Ordering.STRICT:
        return True
    if webhook.ordering == Webhook.Ordering.RECORD:
        return line == Delivery.SHARED_LINE or webhook.max_events_per_request > 1
    return False


def _cap(webhook: Webhook) -> int:
    return 1 if webhook.ordering == Webhook.Ordering.STRICT else webhook.max_in_flight


class _AfterCommit:
    """What the fan-out does once its transaction commits: one per transaction, so that a transaction
    writing many records asks about a webhook's slots once, not once per record."""

    def __init__(self) -> None:
        self.leased: list[int] = []
        self.unleased: dict[int, list[int]] = {}  # webhook id -> its deliveries not leased here
        self.caps: dict[int, int] = {}  # webhook id -> its sending slots
        self.refused: set[int] = set()  # webhooks refused a lease in this transaction

    @classmethod
    def of_this_transaction(cls) -> _AfterCommit:
        # Django keeps a transaction's commit hooks in `run_on_commit`, and drops a rolled-back
        # savepoint's; ours stays last while the transaction only writes records.
        hooks = transaction.get_connection().run_on_commit
        if hooks and isinstance(hooks[-1][1], cls):
            return hooks[-1][1]
        after_commit = cls()
        transaction.on_commit(after_commit, robust=True)
        return after_commit

    def may_lease(self, webhook: Webhook, line: uuid.UUID, now: datetime.datetime) -> bool:
        if webhook.pk in self.refused:
            # This transaction's own unleased delivery waits ahead of any later one: no lease either.
            return False
        ordered_line = None
        if webhook.ordering != Webhook.Ordering.NONE:
            ordered_line = Delivery.SHARED_LINE if webhook.ordering == Webhook.Ordering.STRICT else line
        if ledger.may_lease_at_fan_out(
            webhook.pk,
            now,
            _cap(webhook),
            env_cap=settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT,
            line=ordered_line,
        ):
            return True
        self.refused.add(webhook.pk)
        return False

    def __call__(self) -> None:
        for delivery_id in self.leased:
            queueing.deliver(delivery_id)
        for webhook_id, delivery_ids in self.unleased.items():
            cap = self.caps[webhook_id]
            # Asked after the commit: every holder of a slot looks for due deliveries after it records
            # (`ledger.record`), so when all slots are taken their holders send these.
            try:
                taken = ledger.slots_taken(webhook_id, timezone.now(), cap)
            except DatabaseError:
                taken = False  # in doubt, queue: a task with nothing to do costs little
            if not taken:
                # Each task sends its delivery, then drains what else is due: one per slot is enough.
                for delivery_id in delivery_ids[:cap]:
                    queueing.deliver(delivery_id)


def _may_lease(webhook: Webhook, line: uuid.UUID, now: datetime.datetime, after_commit: _AfterCommit) -> bool:
    """Whether the new delivery is leased here, in the event's transaction (see the module's docstring)."""
    return (
        webhook.state == Webhook.State.ACTIVE
        and webhook.failing_since is None
        and webhook.max_events_per_request == 1
        # Paced webhooks are sent by their tasks, which take their moment from the gate.
        and webhook.max_per_second is None
        and (webhook.slowed_until is None or webhook.slowed_until <= now)
        and after_commit.may_lease(webhook, line, now)
    )


def _new_delivery(
    webhook: Webhook,
    event: Event,
    sequence: int,
    line: uuid.UUID,
    now: datetime.datetime,
    after_commit: _AfterCommit,
    leased: bool,
) -> Delivery:
    active = webhook.state == Webhook.State.ACTIVE
    lease = {}
    if leased:
        seconds = ledger.lease_seconds(webhook.timeout_seconds, settings.WEBHOOK_LEASE_MARGIN_SECONDS)
        lease = {
            "leased_until": now + datetime.timedelta(seconds=seconds),
            "lease_owner": Delivery.FAN_OUT_LEASE_MARK + uuid.uuid4().hex[:30],
            # Frozen now, as a sent delivery's body is: its task needs to read nothing else.
            "body": bodies.render([bodies.event_row(event, sequence)], webhook),
        }
    delivery = Delivery.objects.create(
        webhook=webhook,
        environment_id=event.environment_id,
        message_id=new_message_id(),
        event_count=1,
        event_types=event.type,
        record_id=line,
        next_attempt_at=now,
        enqueued_at=now if active else None,
        **lease,
    )
    if lease:
        after_commit.leased.append(delivery.pk)
    elif active:
        after_commit.unleased.setdefault(webhook.pk, []).append(delivery.pk)
        after_commit.caps[webhook.pk] = _cap(webhook)
    return delivery


def _open_batch(webhook: Webhook, event: Event, line: uuid.UUID) -> Delivery | None:
    """A not-yet-sent delivery of this webhook with room for one more event, locked; None if there is none."""
    delivery = (
        Delivery.objects.select_for_update()
        .filter(
            webhook=webhook,
            status=Delivery.Status.PENDING,
            is_test=False,
            attempt_count=0,
            leased_until__isnull=True,
            event_count__lt=webhook.max_events_per_request,
        )
        .order_by("-id")
        .first()
    )
    if delivery is None:
        return None
    types = delivery.event_types.split()
    if event.type not in types:
        types.append(event.type)
    # A batch of several records' changes is in the shared line: it waits for, and holds, every other.
    joined_line = delivery.record_id if delivery.record_id == line else Delivery.SHARED_LINE
    Delivery.objects.filter(pk=delivery.pk).update(
        event_count=F("event_count") + 1, event_types=" ".join(types)[:500], record_id=joined_line
    )
    return delivery
