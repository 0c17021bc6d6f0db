"""Sending: lease deliveries, sign and POST them, record every attempt, and keep going while work is due.

1. A worker leases deliveries (`ledger.claim`): one by id when its task
   arrives, then up to WEBHOOK_CLAIM_BATCH of the same webhook's due ones at a
   time, oldest first. No more than WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK leases
   (sending slots) per webhook exist at once, across all workers: a receiver
   that hangs holds that many slots, for at most its timeout each, and no more.
2. Each attempt is signed and POSTed under a deadline (`outbound.post`) over
   kept-alive connections; the bodies of a batch come from one query, the keys
   from a per-process cache.
3. A batch's attempts and delivery updates are written in one transaction. If
   the database connection breaks after a POST, the worker reconnects and
   writes again while its lease keeps anyone else from sending the same.
4. A success after failures makes the webhook's waiting deliveries due at
   once and puts its other slots to work: a recovered receiver gets its
   backlog in seconds.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from ..models import Attempt
from . import bodies, ledger, outbound, queueing, retry_policy, signing, signing_keys

logger = logging.getLogger(__name__)

USER_AGENT = "IntegrationTools-Webhooks/1.0"
REDACTED = "[not recorded]"
# A draining worker hands its webhook back to the queue after this long, so that
# one busy webhook does not keep a worker thread from others' tasks for ever.
DRAIN_BUDGET_SECONDS = 5.0


def new_owner() -> str:
    return uuid.uuid4().hex


# How soon a claim that found its webhook's lock held too long (`ledger.ClaimBusy`) is tried again.
BUSY_RETRY_SECONDS = 1.0


def _claim(
    *, busy_raises: bool = False, **kwargs: Any
) -> tuple[ledger.Target | None, list[ledger.Claimed], dict[int, list[ledger.EventRow]] | None]:
    """Lease deliveries (see `ledger.claim`). When a long transaction holds the webhook's claim lock, leave the
    work for a task queued a moment later instead of holding this worker thread until it ends; with
    `busy_raises`, raise `ledger.ClaimBusy` and let the caller, who knows what it was doing, try again."""
    try:
        return ledger.claim(
            cap=settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK,
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
    return headers


def recorded_headers(headers: dict[str, str], extra_headers: dict[str, str]) -> dict[str, str]:
    """The request headers as the history keeps them: extra header values may be credentials, so not those."""
    return {name: REDACTED if name in extra_headers else value for name, value in headers.items()}


def _post(target: ledger.Target, body: str, headers: dict[str, str]) -> outbound.Response:
    if "webhook-signature" not in headers:
        return outbound.Response(
            duration_ms=0, error="no_signing_key", error_detail="no active key signs this webhook; nothing was sent"
        )
    return outbound.post(
        target.url, body.encode(), headers, timeout=target.timeout_seconds, verify_tls=target.verify_tls
    )


def send_claimed(
    target: ledger.Target,
    claimed: list[ledger.Claimed],
    *,
    trigger: str,
    triggered_by: str = "",
    at: datetime.datetime | None = None,
    events: dict[int, list[ledger.EventRow]] | None = None,
    tamper: bool = False,
) -> tuple[list[Attempt], bool]:
    """Send leased deliveries one after another and record them.

    Returns the attempts made, and whether more of the webhook's deliveries
    are due (found out while recording, at no extra round trip). A failed
    attempt ends the batch (the rest go back, unsent): a failing receiver is
    not sent a whole batch in one go. Nothing is sent once the lease could run
    out before the attempt's timeout. `at` fixes the clock (tests move it
    instead of waiting); `events` are the deliveries' events when already read.
    """
    # The lease covers one attempt's timeout plus the margin: start no attempt once half the margin is
    # spent, so the last one ends, and is recorded, before the lease does.
    start_none_after = time.monotonic() + settings.WEBHOOK_LEASE_MARGIN_SECONDS / 2
    if events is None:
        events = ledger.events_of([each.id for each in claimed if not each.body])
    attempts: list[Attempt] = []
    updates: dict[int, ledger.DeliveryUpdate] = {}
    countdowns: dict[int, float] = {}
    unsent: list[int] = []
    for index, delivery in enumerate(claimed):
        if time.monotonic() > start_none_after:
            unsent = [each.id for each in claimed[index:]]
            break
        body = delivery.body or bodies.render(events[delivery.id], target)
        now = at or timezone.now()
        headers = request_headers(target, delivery.message_id, body, now)
        if delivery.is_test:
            headers["webhook-test"] = "true"  # a receiver can tell a test from a real change before acting
        if tamper and delivery.is_test:
            # The signature self-test: the body changes after signing; a verifying receiver must refuse it.
            body = signing.tampered(body)
        result = _post(target, body, headers)
        attempts.append(_attempt(target, delivery, trigger, triggered_by, now, headers, result))
        updates[delivery.id], countdown = retry_policy.after_attempt(delivery, trigger, result, now, body)
        if countdown is not None:
            countdowns[delivery.id] = countdown
        if not result.succeeded:
            unsent = [each.id for each in claimed[index + 1 :]]
            break
    is_test = {each.id: each.is_test for each in claimed}
    # Tests say nothing of the receiver's health: it may refuse a test it cannot act on.
    real = [attempt for attempt in attempts if not is_test[attempt.delivery_id]]
    now = at or timezone.now()
    recorded = _record(
        attempts, updates, unsent, webhook_id=target.id, now=now, succeeded=any(each.succeeded for each in real)
    )
    _after_recording(target, real, recorded, countdowns, now)
    return attempts, recorded.more_due


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
        queueing.drain(target.id, copies=settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK - 1)
    failed = [attempt for attempt in real if not attempt.succeeded]
    if failed:
        retry_policy.note_failure(target.id, failed[-1].status_code, now)
    if target.is_active:
        for delivery_id, countdown in countdowns.items():
            queueing.deliver(delivery_id, countdown=countdown)


# --- What the tasks call ------------------------------------------------------------

MANUAL_TRIGGERS = (Attempt.Trigger.RESEND, Attempt.Trigger.TEST, Attempt.Trigger.PROBE)


def _lease_one(
    delivery_id: int,
    now: datetime.datetime,
    *,
    manual: bool,
    busy_raises: bool = False,
    statuses: tuple[str, ...] = (),
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
        owner=new_owner(), now=now, delivery_id=delivery_id, manual=manual, busy_raises=busy_raises, statuses=statuses
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
) -> Attempt | None:
    """Send one delivery once, if it is due (or asked for by hand) and no one else is sending it.

    Returns the attempt made, or None when there was nothing to do. A scheduled
    attempt also needs its webhook active with a free sending slot (or the
    fan-out's lease); a test, re-send or probe is sent whatever the schedule.
    `now` lets tests move the clock instead of waiting for it. With
    `busy_raises`, a webhook lock held too long raises `ledger.ClaimBusy`
    instead of leaving the delivery to a scheduled task (which sends only due ones).
    `while_status` sends only while the delivery is in one of those statuses (see `ledger.claim`).
    """
    target, claimed, events = _lease_one(
        delivery_id,
        now or timezone.now(),
        manual=trigger in MANUAL_TRIGGERS,
        busy_raises=busy_raises,
        statuses=while_status,
    )
    if not claimed or target is None:
        return None
    attempts, _ = send_claimed(
        target, claimed, trigger=trigger, triggered_by=triggered_by, at=now, events=events, tamper=tamper
    )
    return attempts[0] if attempts else None


def send_now(
    delivery_id: int, *, trigger: str, triggered_by: str = "", while_status: tuple[str, ...] = ()
) -> Attempt | None:
    """Send one delivery now whatever its schedule (test, re-send, probe), unless someone is sending it
    (or, with `while_status`, it is no longer in one of those statuses)."""
    return attempt_delivery(delivery_id, trigger=trigger, triggered_by=triggered_by, while_status=while_status)


def deliver(delivery_id: int) -> int:
    """Send this delivery if it is due and leased to its task or a slot is free; then drain the webhook
    while more is due. Returns the attempts made."""
    target, claimed, events = _lease_one(delivery_id, timezone.now(), manual=False)
    if not claimed or target is None:
        return 0  # already sent, being sent, not due, or no free slot: nothing to do
    attempts, more_due = send_claimed(target, claimed, trigger=Attempt.Trigger.SCHEDULED, events=events)
    return len(attempts) + (drain(target.id, due=True) if more_due else 0)


def drain(webhook_id: int, *, budget: float = DRAIN_BUDGET_SECONDS, due: bool = False) -> int:
    """Send a webhook's due deliveries in batches, oldest first, while a slot is free. Returns attempts made.

    `due` says the caller has just seen due deliveries (no need to look);
    each batch's recording says whether more are. When the time budget is
    spent with work left, a drain task is queued to go on.
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
        attempts, due = send_claimed(target, claimed, trigger=Attempt.Trigger.SCHEDULED)
        made += len(attempts)
        if not due:
            return made
        if time.monotonic() - started > budget:
            queueing.drain(webhook_id)
            return made
        # After a failure, one at a time: a batch would only wait on the failing receiver.
        limit = settings.WEBHOOK_CLAIM_BATCH if attempts and attempts[-1].succeeded else 1
