"""The outbox's owner: how long events stay, and when their data goes.

Two clocks, kept apart on purpose:

- **Event retention** (`Environment.event_retention_days`, else EVENT_RETENTION_DAYS, 120 by default:
  longer than DELIVERY_RETENTION_DAYS) removes whole events from the stream. The stream is pruned as a
  prefix, in position order, so that `EventStream.pruned_through` stays true: every event at or below it
  is gone, and a reader after it misses nothing. Pruning stops before the first event that is newer than
  the retention or that something still references (a delivery, pending, failing or finished but not yet
  pruned: deliveries point at their events and the database refuses to lose them). Such an event, and
  every event after it, stays until that delivery is pruned (finished ones after DELIVERY_RETENTION_DAYS,
  waiting ones never): the retention is never shorter in effect than the oldest delivery needs.
- **Payload retention** (`Environment.payload_retention_days`) erases the data of events older than it,
  whether or not a delivery references them and whether or not any webhook subscribed: only an event a
  delivery still has to send keeps its data (the functions `EVENT_DATA_HOLDS` names say which; the
  webhooks app names its own, so this app imports none). An erased event keeps its id, type, time and
  position: the stream stays complete, its old events carry `"data": {}`.

Test sends' events (`is_test`) are never in the stream; each goes as soon as nothing references it (its
delivery was pruned), after a short grace. Work goes in batches, each its own short transaction.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.fields.reverse_related import ManyToOneRel
from django.db.models.functions import Greatest
from django.utils import timezone

from portal.actor import SYSTEM_ACTOR, Actor
from portal.bindings import named_functions

from . import stream
from .audit import audited, record_audit
from .models import Environment, Event, EventStream

logger = logging.getLogger(__name__)

# Events deleted or erased per transaction.
BATCH = 5000
# A test event is written just before the delivery that references it; one this young is left alone, so
# that pruning never races a test send being written.
TEST_EVENT_GRACE = datetime.timedelta(minutes=10)
# Who the hourly retention's erasures are attributed to in the audit trail.
RETENTION_ACTOR = Actor.for_task("event retention")
MAX_DAYS = 36_500


def retention_days(environment: Environment) -> int:
    """How many days the environment keeps events in its stream (its own setting, else the default)."""
    return environment.event_retention_days or settings.EVENT_RETENTION_DAYS


def set_event_retention(environment: Environment, days: int | None, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Keep this environment's events `days` days (None: EVENT_RETENTION_DAYS). Audited."""
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise ValueError("the event retention is 1 to 36,500 days, or the default")
    with audited(
        actor,
        "environment.event_retention_changed",
        target=environment,
        environment=environment,
        details={"from": environment.event_retention_days, "to": days, "default": settings.EVENT_RETENTION_DAYS},
    ):
        environment.event_retention_days = days
        environment.save(update_fields=["event_retention_days"])


def referenced() -> Q:
    """Events something still points at (in practice a delivery's `DeliveryEvent`): they are never deleted.

    Found from the model's reverse relations, not named: this app does not know who references its events,
    and a new reference is protected the day it is added."""
    condition = Q(pk__in=[])  # nothing, when nothing can reference an event
    for relation in Event._meta.get_fields(include_hidden=True):
        if isinstance(relation, ManyToOneRel):
            rows = relation.related_model._base_manager.filter(**{relation.field.name: OuterRef("pk")})
            condition |= Q(Exists(rows))
    return condition


# --- The stream: whole events past their retention --------------------------------------------------


class _BatchRaced(Exception):
    """An event of the batch became referenced while it was being pruned: the batch is rolled back."""


def prune_stream(environment: Environment, now: datetime.datetime | None = None, *, batch: int = BATCH) -> int:
    """Delete the environment's oldest events past its retention, as a prefix of its stream; how many went.

    Moves `EventStream.pruned_through` up to the last position deleted (never down), in the same
    transaction as each batch, so the feed answers 410 to a cursor before it from the moment they are gone.
    """
    cutoff = (now or timezone.now()) - datetime.timedelta(days=retention_days(environment))
    if stream.has_unpositioned(environment.pk):
        stream.assign_positions(environment.pk)  # only a placed event can be pruned, and none is skipped
    through = _prunable_through(environment.pk, cutoff)
    deleted = 0
    while through is not None:
        try:
            count = _prune_batch(environment.pk, through, batch)
        except (_BatchRaced, IntegrityError):  # the foreign keys' own check, at commit: the same race
            logger.info("event pruning of %s stopped: an event became referenced meanwhile", environment.slug)
            break
        deleted += count
        if count < batch:
            break
    return deleted


def _prunable_through(environment_id: int, cutoff: datetime.datetime) -> int | None:
    """The last position of the prefix that can go: before the first event newer than `cutoff` or still
    referenced; None when nothing can."""
    stream = EventStream.objects.filter(environment_id=environment_id).first()
    if stream is None:
        return None
    kept = (
        Event.objects.filter(environment_id=environment_id, position__gt=stream.pruned_through)
        .filter(Q(occurred_at__gte=cutoff) | referenced())
        .order_by("position")
        .values_list("position", flat=True)
        .first()
    )
    through = stream.last_position if kept is None else kept - 1
    return through if through > stream.pruned_through else None


def _prune_batch(environment_id: int, through: int, batch: int) -> int:
    with transaction.atomic():
        # The stream row's lock: one pruner at a time, and the sequencer waits for the batch (moments).
        stream = EventStream.objects.select_for_update().get(environment_id=environment_id)
        rows = list(
            Event.objects.filter(
                environment_id=environment_id, position__gt=stream.pruned_through, position__lte=through
            )
            .order_by("position")
            .values_list("pk", "position")[:batch]
        )
        if not rows:
            return 0
        # Checked again in the DELETE itself; the database's foreign keys refuse a reference added since.
        doomed = Event.objects.filter(pk__in=[pk for pk, _ in rows]).exclude(referenced())
        if doomed._raw_delete(doomed.db) != len(rows):
            raise _BatchRaced  # a hole below pruned_through would let a reader miss an event: all or nothing
        last = rows[-1][1]
        EventStream.objects.filter(environment_id=environment_id).update(
            pruned_through=Greatest(F("pruned_through"), last)
        )
        return len(rows)


def prune_test_events(now: datetime.datetime | None = None, *, batch: int = BATCH) -> int:
    """Delete test sends' events that nothing references any more (their deliveries were pruned)."""
    settled = (now or timezone.now()) - TEST_EVENT_GRACE
    unreferenced = Event.objects.filter(is_test=True, occurred_at__lt=settled).exclude(referenced())
    deleted = 0
    while True:
        try:
            with transaction.atomic():
                ids = list(unreferenced.order_by("pk").values_list("pk", flat=True)[:batch])
                doomed = unreferenced.filter(pk__in=ids)
                count = doomed._raw_delete(doomed.db) if ids else 0
        except IntegrityError:  # one became referenced meanwhile: the next round tries again
            return deleted
        deleted += count
        if len(ids) < batch:
            return deleted


# --- Data: erased after the payload retention, however the event is reached -------------------------


def data_holds() -> tuple[Callable[[int], QuerySet], ...]:
    """Functions, named in `settings.EVENT_DATA_HOLDS`, each giving (for an environment id) the ids of events
    whose data must stay because they are still to be sent."""
    return named_functions(settings.EVENT_DATA_HOLDS)


def erase_data(events: QuerySet[Event]) -> int:
    """Clear the data of these events, irreversibly; their id, type, time and position stay. How many."""
    return events.exclude(data={}).update(data={})


def erase_old_data(environment: Environment, now: datetime.datetime | None = None, *, batch: int = BATCH) -> int:
    """Erase the data of the environment's events older than its payload retention (none set: nothing),
    delivered, pruned or never subscribed to alike; only events still to be sent keep theirs."""
    if environment.payload_retention_days is None:
        return 0
    cutoff = (now or timezone.now()) - datetime.timedelta(days=environment.payload_retention_days)
    old = Event.objects.filter(environment=environment, occurred_at__lt=cutoff).exclude(data={})
    for held in data_holds():
        old = old.exclude(pk__in=held(environment.pk))
    erased, after = 0, 0
    while True:
        # By id, from where the last batch ended: each run reads the erased rows once, not once a batch
        # (at most the environment's events within the event retention: the older ones are gone).
        ids = list(old.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return erased
        with transaction.atomic():
            erased += erase_data(old.filter(pk__in=ids))  # the holds are checked again as it erases
        after = ids[-1]


# --- The beat task -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retained:
    """What one retention round did."""

    erased: int
    pruned: int
    test_events_pruned: int


def apply_retention(now: datetime.datetime | None = None) -> Retained:
    """Every environment: erase event data past its payload retention, then prune its stream past its
    event retention; then test events nothing references (hourly, from beat)."""
    now = now or timezone.now()
    erased = pruned = 0
    for environment in Environment.objects.order_by("pk"):
        count = erase_old_data(environment, now)
        if count:
            record_audit(
                RETENTION_ACTOR,
                "events.data_erased",
                target=environment,
                environment=environment,
                details={"retention_days": environment.payload_retention_days, "count": count},
            )
        erased += count
        pruned += prune_stream(environment, now)
    return Retained(erased, pruned, prune_test_events(now))
