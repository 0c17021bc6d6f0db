"""Reconciliation: for each webhook and day, where every event it was sent is now.

An event is *produced* for a webhook when it is fanned out to it (one row in
`DeliveryEvent`, in the event's own transaction). Each produced event sits in
exactly one delivery, and each delivery in exactly one status, so per row

    produced = delivered + failed + waiting + discarded

holds by construction, batches included (counted per event, not per request),
and a re-send moves an event between columns without adding one. Days are the
events' own days in the portal's time zone. Test deliveries carry no event and
are left out; deliveries pruned by retention are gone from every column.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from environments.models import Environment

from .models import Attempt, Delivery, DeliveryEvent, Webhook

COLUMNS = ("produced", "delivered", "failed", "waiting", "discarded")
STATUS_OF = {
    "delivered": Q(delivery__status=Delivery.Status.SUCCEEDED),
    "failed": Q(delivery__status=Delivery.Status.FAILED),
    "waiting": Q(delivery__status__in=Delivery.WAITING),
    "discarded": Q(delivery__status=Delivery.Status.DISCARDED),
}


@dataclass
class Row:
    day: datetime.date | None
    webhook_id: int | None
    webhook_name: str
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    waiting: int = 0
    discarded: int = 0
    # Of those produced, how many travel in a delivery someone re-sent by hand (not a column of the sum).
    resent: int = 0
    # HTTP requests (deliveries) the events went in: fewer than events when the webhook batches.
    requests: int = 0

    @property
    def accounted(self) -> int:
        return self.delivered + self.failed + self.waiting + self.discarded

    @property
    def balances(self) -> bool:
        return self.accounted == self.produced


@dataclass
class Report:
    since: datetime.date
    until: datetime.date
    rows: list[Row]
    total: Row = field(init=False)

    def __post_init__(self) -> None:
        self.total = Row(None, None, "All webhooks")
        for row in self.rows:
            for name in (*COLUMNS, "resent", "requests"):
                setattr(self.total, name, getattr(self.total, name) + getattr(row, name))


def reconcile(
    environment: Environment,
    since: datetime.date,
    until: datetime.date,
    webhook: Webhook | None = None,
) -> Report:
    """Per webhook and day from `since` to `until` (both included), newest day first."""
    zone = timezone.get_current_timezone()
    start = datetime.datetime.combine(since, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
    produced = DeliveryEvent.objects.filter(
        delivery__environment=environment,
        delivery__is_test=False,
        event__occurred_at__gte=start,
        event__occurred_at__lt=end,
    )
    if webhook is not None:
        produced = produced.filter(delivery__webhook=webhook)
    resent = Exists(Attempt.objects.filter(delivery=OuterRef("delivery"), trigger=Attempt.Trigger.RESEND))
    counts = (
        produced.annotate(day=TruncDate("event__occurred_at", tzinfo=zone))
        .values("day", "delivery__webhook_id", "delivery__webhook__name")
        .annotate(
            produced=Count("id"),
            **{name: Count("id", filter=condition) for name, condition in STATUS_OF.items()},
            resent=Count("id", filter=resent),
            requests=Count("delivery_id", distinct=True),
        )
        .order_by("-day", "delivery__webhook__name")
    )
    rows = [
        Row(
            day=values["day"],
            webhook_id=values["delivery__webhook_id"],
            webhook_name=values["delivery__webhook__name"],
            **{name: values[name] for name in (*COLUMNS, "resent", "requests")},
        )
        for values in counts
    ]
    return Report(since, until, rows)


CSV_HEADER = ("day", "webhook_id", "webhook", *COLUMNS, "resent", "requests")


def csv_rows(report: Report):
    """The report as CSV rows: one per webhook and day, then the totals."""
    for row in report.rows:
        yield [row.day.isoformat(), row.webhook_id, row.webhook_name, *(getattr(row, n) for n in CSV_HEADER[3:])]
    total = report.total
    yield ["total", "", "", *(getattr(total, n) for n in CSV_HEADER[3:])]
