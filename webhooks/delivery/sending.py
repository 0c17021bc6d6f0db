"""Sending: lease deliveries, sign and POST them, record every attempt, and keep going while work is due.

1. A worker leases deliveries (`ledger.claim`): one by id when its task
   arrives, then up to WEBHOOK_CLAIM_BATCH of the same webhook's due ones at a
   time, oldest first, each the head of its line when the webhook orders its
   deliveries. No more than the webhook's max_in_flight leases (sending slots;
   one for strict order) exist at once, across all workers, and no more than
   WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT per environment: a receiver that
   hangs holds that many slots, for at most its timeout each, and no more.
2. Each request is marked in the database before it leaves (`ledger.mark_sending`,
   which also takes the rate limit's next moment), then signed and POSTed
   under a deadline (`outbound.post`) over kept-alive connections. In a
   worker the POST runs on an I/O thread (`inflight`): an answer slower than
   WEBHOOK_SEND_PATIENCE_SECONDS is parked and recorded when it comes, so a
   receiver that hangs holds no worker thread.
3. A batch's attempts and delivery updates are written in one transaction. If
   the database connection breaks after a POST, the worker reconnects and
   writes again while its lease keeps anyone else from sending the same. A
   mark left by a worker that stopped becomes an attempt of unknown outcome.
4. A success after failures makes the webhook's waiting deliveries due at
   once and puts its other slots to work: a recovered receiver gets its
   backlog in seconds. A 429 with Retry-After closes the webhook's gate for that
   long instead of counting as a failure.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from environments.models import Environment
from portal import log_context, tracing

from ..models import Attempt, Delivery, Webhook
from . import authorization, bodies, inflight, ledger, outbound, queueing, retry_policy, signing, signing_keys

logger = logging.getLogger(__name__)

USER_AGENT = "IntegrationTools-Webhooks/1.0"
REDACTED = "[not recorded]"
# A draining worker hands its webhook back to the queue after this long, so that
# one busy webhook does not keep a worker thread from others' tasks for ever.
DRAIN_BUDGET_SECONDS = 5.0


def new_owner() -> str:
    return uuid.uuid4().hex


# How long after a request starts the worker thread does something else meanwhile (see `_answer`).
MEANWHILE_AFTER_SECONDS = 0.001
# How soon a claim that found its webhook's lock held too long (`ledger.ClaimBusy`) is tried again.
BUSY_RETRY_SECONDS = 1.0


def _claim(
    *, busy_raises: bool = False, **kwargs: Any
) -> tuple[ledger.Target | None, list[ledger.Claimed], dict[int, list[ledger.EventRow]] | None]:
    """Lease deliveries (see `ledger.claim`). When a long transaction holds the webhook's claim lock, leave the
    work for a task queued a moment later instead of holding this worker thread until it ends; with
    `busy_raises`, raise `ledger.ClaimBusy` and let the caller, who knows what it was doing, try again.
    When the webhook's gate is closed (its rate limit or a 429's slow-down), a drain is queued for when it opens.
    """
    try:
        target, claimed, events = ledger.claim(
            env_cap=settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT,
            margin=settings.WEBHOOK_LEASE_MARGIN_SECONDS,
            **kwargs,
        )
    except ledger.ClaimBusy:
        if busy_raises:
            raise
        if kwargs.get("delivery_id") is not None:
            queueing.deliver(kwargs["delivery_id"], countdown=BUSY_RETRY_SECONDS)
        else:
            queueing.drain(kwargs["webhook_id"], countdown=BUSY_RETRY_SECONDS)
        return None, [], None
    if not claimed and target is not None:
        _wake_up_when_gate_opens(target, kwargs["now"])
    return target, claimed, events


def _wake_up_when_gate_opens(target: ledger.Target, now: datetime.datetime) -> None:
    """If the webhook's gate is closed, make sure one drain is queued for when it opens (and only one)."""
    opens_at = target.gate_opens_at(now)
    if opens_at is not None and ledger.take_wake_up(target.id, opens_at, now):
        queueing.drain(target.id, countdown=max((opens_at - now).total_seconds(), 0.0))


def request_headers(target: ledger.Target, message_id: str, body: str, now: datetime.datetime) -> dict[str, str]:
    """The headers of one request: the webhook's extra headers, then ours, signed with every live key."""
    timestamp = int(now.timestamp())
    keys = signing_keys.keys_at(target.id, target.security_method, target.keys_version, now)
    headers = dict(target.extra_headers)
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
        }
    )
    if keys:
        headers["webhook-signature"] = signing.signature_header(keys, message_id, timestamp, body)
    auth = authorization.settings_of(target.id, target.keys_version)
    if auth is not None and auth.uses_oauth:
        # The token goes in as the request leaves (`_post`); the history keeps that one was sent.
        headers["Authorization"] = authorization.TOKEN_PLACEHOLDER
    return headers


def recorded_headers(headers: dict[str, str], extra_headers: dict[str, str]) -> dict[str, str]:
    """The request headers as the history keeps them: extra header values may be credentials, so not those."""
    return {
        name: REDACTED if name in extra_headers and value != authorization.TOKEN_PLACEHOLDER else value
        for name, value in headers.items()
    }


def _post(target: ledger.Target, body: str, headers: dict[str, str]) -> outbound.Response:
    if "webhook-signature" not in headers:
        return outbound.Response(
            duration_ms=0, error="no_signing_key", error_detail="no active key signs this webhook; nothing was sent"
        )
    auth = authorization.settings_of(target.id, target.keys_version)
    if auth is not None:
        return authorization.post(
            target.id,
            target.keys_version,
            auth,
            target.url,
            body.encode(),
            headers,
            timeout=target.timeout_seconds,
            verify_tls=target.verify_tls,
        )
    return outbound.post(
        target.url, body.encode(), headers, timeout=target.timeout_seconds, verify_tls=target.verify_tls
    )


@dataclass
class Sent:
    """What sending a batch did."""

    attempts: list[Attempt]  # the attempts recorded now
    more_due: bool  # more of the webhook's deliveries are due (found out while recording)
    parked: bool = False  # one request was left to the I/O threads, to be recorded when it ends


def send_claimed(
    target: ledger.Target,
    claimed: list[ledger.Claimed],
    *,
    trigger: str,
    triggered_by: str = "",
    at: datetime.datetime | None = None,
    events: dict[int, list[ledger.EventRow]] | None = None,
    tamper: bool = False,
    may_park: bool = False,
) -> Sent:
    """Send leased deliveries one after another, each marked before it leaves (`ledger.mark_sending`, which
    keeps the rate too), and record them. A failure, a closed gate (a drain is queued for when it opens), a
    lease running short or, with `may_park` (in a worker), an answer left to the I/O threads (`inflight`)
    ends the batch: the rest go back, unsent. `at` fixes the clock (tests move it instead of waiting);
    `events` are the deliveries' events when already read.
    """
    # The lease covers one attempt's timeout plus the margin: start no attempt once half the margin is
    # spent, so the last one ends, and is recorded, before the lease does.
    start_none_after = time.monotonic() + settings.WEBHOOK_LEASE_MARGIN_SECONDS / 2
    _record_interrupted(claimed, at or timezone.now())
    if events is None:
        events = ledger.events_of([each.id for each in claimed if not each.body])
    outcomes = _Outcomes(target, trigger, triggered_by)
    ahead: dict[int, tuple[str, dict[str, str], datetime.datetime]] = {}
    unsent: list[int] = []
    gate_closed = parked = False
    for index, delivery in enumerate(claimed):
        if time.monotonic() > start_none_after:
            unsent = [each.id for each in claimed[index:]]
            break
        # Whatever is logged from here on is about this delivery (its correlation fields).
        log_context.bind_delivery(
            webhook_id=target.id,
            delivery_id=delivery.id,
            message_id=delivery.message_id,
            environment=_environment_slug(target.environment_id),
        )
        prepared = ahead.pop(delivery.id, None)
        body, headers, now = prepared or _prepare(target, delivery, events, at, tamper, trigger)
        if prepared is None and not ledger.mark_sending(delivery.id, target.id, now, target.max_per_second):
            unsent, gate_closed = [each.id for each in claimed[index:]], True
            break
        meanwhile = _meanwhile(target, claimed[index + 1 :], events, now, tamper, may_park, ahead, outcomes)
        span = tracing.start_post(target.id, delivery.id)  # a no-op unless tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT)
        headers = {**headers, **tracing.headers_for(span)}  # `traceparent`: a receiver that traces joins the trace
        result, slow = _answer(target, body, headers, start_none_after, may_park, meanwhile)
        tracing.end_post(span, result)
        outcomes.settle()  # the previous answer, if nothing settled it meanwhile
        if slow is not None:
            unsent, parked = [each.id for each in claimed[index + 1 :]], True
            inflight.park(
                slow, functools.partial(_record_parked, target, delivery, trigger, triggered_by, now, headers, body)
            )
            break
        if result is None:  # too late to start within the lease: it goes back, unsent
            unsent = [each.id for each in claimed[index:]]
            break
        outcomes.answered(delivery, now, headers, body, result)
        if not result.succeeded:
            unsent = [each.id for each in claimed[index + 1 :]]
            break
    outcomes.settle()
    recorded = _record_batch(target, claimed, outcomes.attempts, outcomes.updates, unsent, outcomes.countdowns, at)
    if gate_closed:
        _wake_up_when_gate_opens(_with_gate(target), timezone.now())
    return Sent(outcomes.attempts, recorded.more_due and not gate_closed, parked)


_slugs: dict[int, str] = {}


def _environment_slug(environment_id: int) -> str:
    """An environment's slug for the log lines of delivery work, read once per process (slugs do not change)."""
    if environment_id not in _slugs:
        found = Environment.objects.filter(pk=environment_id).values_list("slug", flat=True).first()
        _slugs[environment_id] = found or ""
    return _slugs[environment_id]


def _prepare(
    target: ledger.Target,
    delivery: ledger.Claimed,
    events: dict[int, list[ledger.EventRow]],
    at: datetime.datetime | None,
    tamper: bool,
    trigger: str,
) -> tuple[str, dict[str, str], datetime.datetime]:
    """A request prepared now (not while the previous one was out): its body, headers and moment."""
    now = at or timezone.now()
    body, headers = _request(target, delivery, events, now, tamper, heartbeat=trigger == Attempt.Trigger.HEARTBEAT)
    return body, headers, now


@dataclass
class _Outcomes:
    """What a batch's answers come to: each answer is settled (its attempt row, the delivery's next state)
    while the next request is out when it can be, so that work is not between two requests."""

    target: ledger.Target
    trigger: str
    triggered_by: str
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    updates: dict[int, ledger.DeliveryUpdate] = dataclasses.field(default_factory=dict)
    countdowns: dict[int, float] = dataclasses.field(default_factory=dict)
    pending: tuple[ledger.Claimed, datetime.datetime, dict[str, str], str, outbound.Response] | None = None

    def answered(
        self,
        delivery: ledger.Claimed,
        now: datetime.datetime,
        headers: dict[str, str],
        body: str,
        result: outbound.Response,
    ) -> None:
        self.settle()
        self.pending = (delivery, now, headers, body, result)

    def settle(self) -> None:
        if self.pending is None:
            return
        delivery, now, headers, body, result = self.pending
        self.pending = None
        self.attempts.append(_attempt(self.target, delivery, self.trigger, self.triggered_by, now, headers, result))
        self.updates[delivery.id], countdown = retry_policy.after_attempt(delivery, self.trigger, result, now, body)
        if countdown is not None:
            self.countdowns[delivery.id] = countdown


def _meanwhile(
    target: ledger.Target,
    rest: list[ledger.Claimed],
    events: dict[int, list[ledger.EventRow]],
    now: datetime.datetime,
    tamper: bool,
    may_park: bool,
    ahead: dict[int, tuple[str, dict[str, str], datetime.datetime]],
    outcomes: _Outcomes,
) -> Callable[[], object] | None:
    """In a worker, what is done while a request is out: the previous answer is settled, and the next of the
    batch is prepared and marked (not when paced: its moment is its own), so none of it costs time between two
    requests. If the next is not sent after all, it goes back with the rest, its mark cleared."""
    if not (may_park and inflight.enabled()):
        return None
    following = rest[0] if rest and not target.max_per_second else None

    def meanwhile() -> None:
        outcomes.settle()
        if following is not None and ledger.mark_sending(following.id, target.id, now, None):
            ahead[following.id] = (*_request(target, following, events, now, tamper), now)

    return meanwhile


def _request(
    target: ledger.Target,
    delivery: ledger.Claimed,
    events: dict[int, list[ledger.EventRow]],
    now: datetime.datetime,
    tamper: bool,
    *,
    heartbeat: bool = False,
) -> tuple[str, dict[str, str]]:
    """The body and headers of one delivery's request (its body frozen once sent, rendered until then).

    A heartbeat is sent as a test is, but is no test: it carries no `webhook-test` header."""
    body = delivery.body or bodies.render(events[delivery.id], target)
    headers = request_headers(target, delivery.message_id, body, now)
    if delivery.is_test and not heartbeat:
        headers["webhook-test"] = "true"  # a receiver can tell a test from a real change before acting
    if tamper and delivery.is_test:
        # The signature self-test: the body changes after signing; a verifying receiver must refuse it.
        body = signing.tampered(body)
    return body, headers


def _record_interrupted(claimed: list[ledger.Claimed], now: datetime.datetime) -> None:
    """A delivery still marked when its lease ran out was being sent by a worker that stopped: that attempt
    goes in the history (outcome unknown) before this one."""
    stopped = [each.id for each in claimed if each.sending_since is not None]
    if not stopped:
        return
    counts = ledger.record_interrupted(now, stopped)
    for each in claimed:
        if each.id in counts:
            each.attempt_count, each.probes = counts[each.id]
        each.sending_since = None


def _patience(target: ledger.Target) -> float:
    # A failing receiver is not waited for at all: its answers are the ones that hang.
    return 0.0 if target.failing_since is not None else settings.WEBHOOK_SEND_PATIENCE_SECONDS


def _post_unless_late(
    target: ledger.Target, body: str, headers: dict[str, str], start_none_after: float
) -> outbound.Response | None:
    """The request, on an I/O thread: not sent (None) if it only got a thread once too late for its lease."""
    if time.monotonic() > start_none_after:
        return None
    return _post(target, body, headers)


def _answer(
    target: ledger.Target,
    body: str,
    headers: dict[str, str],
    start_none_after: float,
    may_park: bool,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[outbound.Response | None, Future[outbound.Response | None] | None]:
    """The receiver's answer, or (in a worker) the request still waiting for it after the patience; in a
    worker, `meanwhile` runs while the request is out."""
    if not (may_park and inflight.enabled()):
        return _post(target, body, headers), None
    future = inflight.submit(functools.partial(_post_unless_late, target, body, headers, start_none_after))
    if meanwhile is not None:
        # A moment first, so the request is on its way before this thread takes the interpreter back.
        inflight.settled(future, MEANWHILE_AFTER_SECONDS)
        meanwhile()
    if inflight.settled(future, _patience(target)):
        return future.result(), None
    return None, future


def _record_batch(
    target: ledger.Target,
    claimed: list[ledger.Claimed],
    attempts: list[Attempt],
    updates: dict[int, ledger.DeliveryUpdate],
    unsent: list[int],
    countdowns: dict[int, float],
    at: datetime.datetime | None,
) -> ledger.Recorded:
    is_test = {each.id: each.is_test for each in claimed}
    # Tests say nothing of the receiver's health: it may refuse a test it cannot act on.
    real = [attempt for attempt in attempts if not is_test[attempt.delivery_id]]
    now = at or timezone.now()
    recorded = _record(
        attempts, updates, unsent, webhook_id=target.id, now=now, succeeded=any(each.succeeded for each in real)
    )
    _after_recording(target, real, recorded, countdowns, now)
    return recorded


def _record_parked(
    target: ledger.Target,
    delivery: ledger.Claimed,
    trigger: str,
    triggered_by: str,
    started_at: datetime.datetime,
    headers: dict[str, str],
    body: str,
    result: outbound.Response | None,
) -> None:
    """A parked request has ended (on the recorder thread): record it as the worker would have, and go on."""
    if result is None:  # it never left: too late for its lease
        _record_batch(target, [delivery], [], {}, [delivery.id], {}, None)
        queueing.drain(target.id)
        return
    attempt = _attempt(target, delivery, trigger, triggered_by, started_at, headers, result)
    update, countdown = retry_policy.after_attempt(delivery, trigger, result, started_at, body)
    countdowns = {} if countdown is None else {delivery.id: countdown}
    if _record_batch(target, [delivery], [attempt], {delivery.id: update}, [], countdowns, None).more_due:
        queueing.drain(target.id)


def _with_gate(target: ledger.Target) -> ledger.Target:
    """The target with its gate as it stands now (a send found it closed since the claim read it)."""
    rate_next_at, slowed_until = ledger.gate_of(target.id)
    return dataclasses.replace(target, rate_next_at=rate_next_at, slowed_until=slowed_until)


def _attempt(
    target: ledger.Target,
    delivery: ledger.Claimed,
    trigger: str,
    triggered_by: str,
    started_at: datetime.datetime,
    headers: dict[str, str],
    result: outbound.Response,
) -> Attempt:
    """The history's row for one request sent (not yet saved: a batch's rows are written together)."""
    return Attempt(
        delivery_id=delivery.id,
        webhook_id=target.id,
        number=delivery.attempt_count + 1,
        trigger=trigger,
        started_at=started_at,
        duration_ms=result.duration_ms,
        url=target.url,
        request_headers=recorded_headers(headers, target.extra_headers),
        status_code=result.status_code,
        response_headers=result.headers,
        response_body=result.body,
        error=result.error,
        error_detail=result.error_detail,
        succeeded=result.succeeded,
        triggered_by=triggered_by[:255],
    )


def _record(
    attempts: list[Attempt], updates: dict[int, ledger.DeliveryUpdate], unsent: list[int], **webhook: Any
) -> ledger.Recorded:
    """Write the batch; on a broken connection, reconnect and write again (the receiver already has these).

    A connection can break after the database committed the batch but before
    it said so: the second try finds the batch there and writes nothing twice.
    """
    give_up_at = time.monotonic() + settings.WEBHOOK_LEASE_MARGIN_SECONDS / 2
    again = False
    while True:
        try:
            return ledger.record(attempts, updates, unsent, again=again, **webhook)
        except _CONNECTION_ERRORS as error:
            if time.monotonic() > give_up_at:
                raise
            logger.warning("recording %d attempts failed (%s); reconnecting", len(attempts), error.__class__.__name__)
            _reconnect()
            time.sleep(0.2)
            again = True


# The configured backend's driver module (psycopg, or sqlite3 for `make run`); the stubs' base class lacks it.
_DRIVER: Any = cast(Any, connection).Database
# Django's wrappers of a broken connection's errors, and the driver's own from the pipelined path.
_CONNECTION_ERRORS = (
    OperationalError,
    InterfaceError,
    _DRIVER.OperationalError,
    _DRIVER.InterfaceError,
)


def _reconnect() -> None:
    try:
        connection.close()
    except DatabaseError:
        connection.connection = None  # closing a dead connection can fail too; drop it


def _after_recording(
    target: ledger.Target,
    real: list[Attempt],
    recorded: ledger.Recorded,
    countdowns: dict[int, float],
    now: datetime.datetime,
) -> None:
    if recorded.recovered:
        # It was failing and answers again: what waits for it need not wait out its backoff.
        retry_policy.make_waiting_due(target.id, now)
        queueing.drain(target.id, copies=target.cap - 1)
    slowed = [
        attempt for attempt in real if retry_policy.slow_down_asked(attempt.status_code, attempt.response_headers)
    ]
    if slowed:
        retry_policy.slow_down(target.id, slowed[-1].status_code, slowed[-1].response_headers, now)
    # A 429 with Retry-After is the receiver pacing us, not failing: it counts towards nothing.
    failed = [attempt for attempt in real if not attempt.succeeded and attempt not in slowed]
    if failed:
        retry_policy.note_failure(target.id, failed[-1].status_code, now)
    if target.is_active:
        for delivery_id, countdown in countdowns.items():
            queueing.deliver(delivery_id, countdown=countdown)


# --- What the tasks call ------------------------------------------------------------

# Sent whatever the schedule (a heartbeat too: it has none, and is never retried).
MANUAL_TRIGGERS = (Attempt.Trigger.RESEND, Attempt.Trigger.TEST, Attempt.Trigger.PROBE, Attempt.Trigger.HEARTBEAT)


def _lease_one(
    delivery_id: int,
    now: datetime.datetime,
    *,
    manual: bool,
    busy_raises: bool = False,
    statuses: tuple[str, ...] = (),
    in_line: bool = False,
) -> tuple[ledger.Target | None, list[ledger.Claimed], dict[int, list[ledger.EventRow]] | None]:
    """The delivery, leased for this worker: the fan-out's lease when it took one, else a claim.

    Only the task the fan-out queued meets a fan-out's lease, so reading it is
    enough; a manual send never takes it (it would race that task).
    """
    if not manual:
        try:
            target, claimed = ledger.load_fan_out_leased(delivery_id, now)
        except _CONNECTION_ERRORS:
            _reconnect()  # a connection cut since the last task: once more on a new one
            target, claimed = ledger.load_fan_out_leased(delivery_id, now)
        if claimed:
            return target, claimed, None
    return _claim(
        owner=new_owner(),
        now=now,
        delivery_id=delivery_id,
        manual=manual,
        busy_raises=busy_raises,
        statuses=statuses,
        in_line=in_line,
    )


def attempt_delivery(
    delivery_id: int,
    *,
    trigger: str = Attempt.Trigger.SCHEDULED,
    now: datetime.datetime | None = None,
    triggered_by: str = "",
    tamper: bool = False,
    busy_raises: bool = False,
    while_status: tuple[str, ...] = (),
    in_line: bool = False,
    may_park: bool = False,
) -> Attempt | None:
    """Send one delivery once, if it is due (or asked for by hand) and no one else is sending it.

    Returns the attempt made, or None when there was nothing to do. Every send
    needs a free sending slot of its webhook (and environment) and the
    webhook's gate open (rate limit, 429 slow-down). A scheduled attempt also
    needs its webhook active and the delivery due at the head of its line (or
    the fan-out's lease); a test, re-send or probe is sent whatever the
    schedule (with `in_line`, a waiting one only at the head of its line).
    `now` lets tests move the clock instead of waiting for it. With
    `busy_raises`, a webhook lock held too long raises `ledger.ClaimBusy`
    instead of leaving the delivery to a scheduled task (which sends only due ones).
    `while_status` sends only while the delivery is in one of those statuses (see `ledger.claim`).
    With `may_park` (in a worker), a slow answer is recorded when it comes and None is returned now: the
    caller finds the attempt in the history later.
    """
    target, claimed, events = _lease_one(
        delivery_id,
        now or timezone.now(),
        manual=trigger in MANUAL_TRIGGERS,
        busy_raises=busy_raises,
        statuses=while_status,
        in_line=in_line,
    )
    if not claimed or target is None:
        return None
    sent = send_claimed(
        target,
        claimed,
        trigger=trigger,
        triggered_by=triggered_by,
        at=now,
        events=events,
        tamper=tamper,
        may_park=may_park,
    )
    if sent.more_due and trigger in MANUAL_TRIGGERS:
        # A re-send of the head of a line (or one that got through to a failing receiver) may have let
        # more go: nobody else is draining this webhook for it.
        queueing.drain(target.id)
    return sent.attempts[0] if sent.attempts else None


def send_now(
    delivery_id: int,
    *,
    trigger: str,
    triggered_by: str = "",
    while_status: tuple[str, ...] = (),
    in_line: bool = False,
    may_park: bool = False,
) -> Attempt | None:
    """Send one delivery now whatever its schedule (test, re-send, probe), unless someone is sending it
    (or, with `while_status`, it is no longer in one of those statuses; with `in_line`, it waits behind an
    older one of its line). With `may_park`, a slow answer is recorded later and None returned now."""
    return attempt_delivery(
        delivery_id,
        trigger=trigger,
        triggered_by=triggered_by,
        while_status=while_status,
        in_line=in_line,
        may_park=may_park,
    )


def probe(delivery_id: int) -> Sent | None:
    """Send a failing webhook's waiting delivery early (a probe), if it still waits at the head of its line.

    In a worker, a probe of a receiver that hangs is parked like any slow
    request: its success, when it comes, makes everything that waits due.
    """
    now = timezone.now()
    target, claimed, events = _lease_one(delivery_id, now, manual=True, statuses=Delivery.WAITING, in_line=True)
    if not claimed or target is None:
        return None
    return send_claimed(target, claimed, trigger=Attempt.Trigger.PROBE, events=events, may_park=True)


def deliver(delivery_id: int) -> int:
    """Send this delivery if it is due and leased to its task or a slot is free; then drain the webhook
    while more is due. Returns the attempts made (now: a parked one is recorded when it ends)."""
    target, claimed, events = _lease_one(delivery_id, timezone.now(), manual=False)
    if target is not None and not claimed and target.ordering != Webhook.Ordering.NONE:
        # Perhaps behind older ones of its line that are due too: a drain takes them together, in order.
        return drain(target.id)
    if not claimed or target is None:
        return 0  # already sent, being sent, not due, held in its line, or no free slot: nothing to do
    sent = send_claimed(target, claimed, trigger=Attempt.Trigger.SCHEDULED, events=events, may_park=True)
    if sent.parked or not sent.more_due:
        return len(sent.attempts)
    return len(sent.attempts) + drain(target.id, due=True)


def drain(webhook_id: int, *, budget: float = DRAIN_BUDGET_SECONDS, due: bool = False) -> int:
    """Send a webhook's due deliveries in batches, oldest first, while a slot is free. Returns attempts made.

    `due` says the caller has just seen due deliveries (no need to look);
    each batch's recording says whether more are. When the time budget is
    spent with work left, a drain task is queued to go on. A parked request
    ends the drain: its slot stays taken until the answer is recorded, and
    the recorder queues a drain then if more is due.
    """
    if not due and not ledger.has_due(webhook_id, timezone.now()):
        return 0
    owner = new_owner()
    started = time.monotonic()
    limit = settings.WEBHOOK_CLAIM_BATCH
    made = 0
    while True:
        target, claimed, _ = _claim(owner=owner, now=timezone.now(), webhook_id=webhook_id, limit=limit)
        if not claimed or target is None:
            return made
        sent = send_claimed(target, claimed, trigger=Attempt.Trigger.SCHEDULED, may_park=True)
        made += len(sent.attempts)
        if sent.parked or not sent.more_due:
            return made
        if time.monotonic() - started > budget:
            queueing.drain(webhook_id)
            return made
        # After a failure, one at a time: a batch would only wait on the failing receiver; with a rate
        # limit, one at a time too: the next has to wait for its moment anyway.
        succeeded = bool(sent.attempts) and sent.attempts[-1].succeeded
        limit = settings.WEBHOOK_CLAIM_BATCH if succeeded and not target.max_per_second else 1
