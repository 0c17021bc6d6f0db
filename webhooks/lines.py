"""A webhook's lines, as people see them: what holds them, giving up on a change, re-sending out of order.

A webhook that orders its deliveries (`Webhook.Ordering`) sends them in lines: per record, one record's
changes one at a time; strict, every delivery in one line. A waiting delivery goes only when nothing older
of its line waits (a delivery of no single record, or of several, is in the shared line,
`Delivery.SHARED_LINE`, which is part of every record's line). The sending path enforces that
(webhooks/delivery); this module reads it back for the pages and commands: which lines are held by a
change that keeps failing, and what a re-send by hand would do to the order. Test deliveries are in no line.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import ngettext

from environments.audit import audited
from environments.models import Record
from portal.actor import Actor

from . import options
from .delivery import queueing
from .models import Delivery, Webhook

HELD_LINES_SHOWN = 20


class DiscardRefused(ValueError):
    """A delivery that cannot be given up on now, with the sentence saying why."""


@dataclass(frozen=True)
class HeldLine:
    """A line held by its head: the oldest waiting delivery of the line, which has failed and waits for a retry."""

    head: Delivery
    record: str  # `patients/P-0042`, or what the head carries when it is no single record's change
    behind: int  # waiting deliveries of the line after the head


def sending_policy(webhook: Webhook) -> str:
    """How a webhook sends, in words: “in order per record, at most 4 at a time, 10/s”."""
    return options.describe_policy(
        options.OptionValues(**{name: getattr(webhook, name) for name in options.OPTION_NAMES})
    )


def _of_one_record(delivery: Delivery) -> bool:
    """Whether the delivery is one record's change (else: the shared line of a batch or of no record)."""
    return delivery.record_id is not None and delivery.record_id != Delivery.SHARED_LINE


def _waiting(webhook: Webhook) -> QuerySet[Delivery]:
    return Delivery.objects.filter(webhook=webhook, status__in=Delivery.WAITING, is_test=False)


def _line_of(delivery: Delivery) -> QuerySet[Delivery]:
    """Every non-test delivery of the delivery's line, whatever its status (itself included)."""
    line = Delivery.objects.filter(webhook_id=delivery.webhook_id, is_test=False)
    if delivery.webhook.ordering == Webhook.Ordering.STRICT or not _of_one_record(delivery):
        return line
    return line.filter(Q(record_id=delivery.record_id) | Q(record_id=Delivery.SHARED_LINE))


def _heading(candidates: QuerySet[Delivery], line: QuerySet[Delivery]) -> QuerySet[Delivery]:
    """Of `candidates`, those first in `line` (nothing older in it waits) with something waiting behind them."""
    return candidates.exclude(Exists(line.filter(id__lt=OuterRef("id")))).filter(
        Exists(line.filter(id__gt=OuterRef("id")))
    )


def held_lines(webhook: Webhook, limit: int = HELD_LINES_SHOWN) -> list[HeldLine]:
    """The lines of an ordered webhook held by a head that has failed, oldest head first (at most `limit`).

    A head holds its line when it waits for a retry (it has failed at least once) and later deliveries of its
    line wait behind it. A webhook that does not order its deliveries has no lines.
    """
    if webhook.ordering == Webhook.Ordering.NONE:
        return []
    waiting = _waiting(webhook)
    failed_heads = waiting.filter(status=Delivery.Status.RETRYING, attempt_count__gt=0)
    if webhook.ordering == Webhook.Ordering.STRICT:
        heads = _heading(failed_heads, waiting)  # one line: only the oldest waiting delivery can hold it
    else:
        # A change of one record waits for older ones of its record and of no record; one of no record
        # (a batch, or an event of none) waits for every older one.
        same_line = waiting.filter(Q(record_id=OuterRef("record_id")) | Q(record_id=Delivery.SHARED_LINE))
        heads = _heading(failed_heads.exclude(record_id=Delivery.SHARED_LINE), same_line) | _heading(
            failed_heads.filter(record_id=Delivery.SHARED_LINE), waiting
        )
    heads = heads.select_related("webhook").order_by("id")[:limit]
    return [
        HeldLine(
            head=head,
            record=record_label(head),
            behind=waiting_behind(head),
        )
        for head in heads
    ]


def waiting_behind(delivery: Delivery) -> int:
    """How many deliveries of its line wait behind a delivery (for a head: how many it holds)."""
    return _line_of(delivery).filter(status__in=Delivery.WAITING, id__gt=delivery.id).count()


def record_label(delivery: Delivery) -> str:
    """The record whose change a delivery carries, as people know it: `patients/P-0042` (its external id), else
    `patients/<record id>`; from the delivery's events once the record is deleted."""
    events = list(delivery.events.order_by("id")[:2])
    record_id = delivery.record_id
    if record_id is None or not _of_one_record(delivery):
        if len(events) == 1:
            return f"{events[0].type} (no single record)"
        count = delivery.event_count or len(events)
        return ngettext("a batch of %(count)d change", "a batch of %(count)d changes", count) % {"count": count}
    record = Record.objects.filter(pk=record_id).only("data_type", "external_id").first()
    if record is not None:
        return f"{record.data_type}/{record.external_id or record.pk}"
    data_type = events[0].type.partition(".")[0] if events else "record"
    return f"{data_type}/{delivery.record_id}"


def discard_delivery(delivery: Delivery, *, actor: Actor) -> None:
    """Give up on one waiting delivery: it is discarded (never sent), and the next of its line goes. Audited.

    Raises DiscardRefused when it is no longer waiting, or a worker is sending it right now.
    """
    webhook = delivery.webhook
    details = {
        "message_id": delivery.message_id,
        "record_id": str(delivery.record_id) if _of_one_record(delivery) else None,
        "attempts": delivery.attempt_count,
        "last_result": delivery.result_label,
    }
    with audited(actor, "delivery.discarded", target=webhook, environment=webhook.environment, details=details):
        # Locked: a worker that claims it meanwhile waits for this, and then finds it discarded.
        current = Delivery.objects.select_for_update().get(pk=delivery.pk)
        if not current.is_waiting:
            raise DiscardRefused(f"{delivery.message_id} is {current.get_status_display().lower()}, no longer waiting")
        if current.leased_until is not None and current.leased_until >= timezone.now():
            raise DiscardRefused(f"{delivery.message_id} is being sent right now: wait for its answer")
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.DISCARDED, next_attempt_at=None)
        # What waited behind it may go now.
        transaction.on_commit(lambda: queueing.drain(webhook.pk), robust=True)
    delivery.status, delivery.next_attempt_at = Delivery.Status.DISCARDED, None


def resend_out_of_order(delivery: Delivery) -> str:
    """What a re-send by hand of this delivery would do to its line's order, in one sentence ('' if nothing).

    Out of order: a finished delivery re-sent after newer changes of its line were received, or a waiting
    one sent ahead of an older one of its line that still waits. Either way the receiver gets older data last.
    """
    webhook = delivery.webhook
    if webhook.ordering == Webhook.Ordering.NONE or delivery.is_test:
        return ""
    line = _line_of(delivery)
    per_record = webhook.ordering == Webhook.Ordering.RECORD and _of_one_record(delivery)
    what = f"this change of {record_label(delivery)}" if per_record else f"delivery {delivery.message_id}"
    scope = "of that record" if per_record else "of this webhook"
    noun = ("change", "changes") if per_record else ("delivery", "deliveries")
    if delivery.is_waiting:
        older = line.filter(status__in=Delivery.WAITING, id__lt=delivery.id).count()
        if not older:
            return ""  # the head of its line: sending it now is its turn
        waiting = f"{older} older {noun[older != 1]} {scope} that still wait{'s' if older == 1 else ''}"
        return f"Re-sending {what} now sends it before {waiting}: the receiver gets older data last."
    newer = line.filter(status=Delivery.Status.SUCCEEDED, id__gt=delivery.id).count()
    if not newer:
        return ""
    received = f"{newer} newer {noun[newer != 1]} {scope}"
    return f"Re-sending {what} now sends it after {received}: the receiver gets older data last."
