"""The delivery engine: from an event to signed requests, retries, and the sweeper that loses nothing.

1. `fan_out` runs inside the transaction that emits an event: it writes a
   Delivery per subscribed webhook (or adds the event to one still open for
   batching) and, on commit, puts a task on the queue.
2. `attempt_delivery` claims the delivery with a lease (one atomic UPDATE, so
   two workers never send the same attempt), signs and sends it outside any
   transaction, records the attempt, and schedules the next one on failure.
3. `sweep` re-enqueues deliveries that are due but not in flight: a killed
   worker, a flushed Redis or a crash between commit and enqueue only delays.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import random
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from credentials import secrets as credential_secrets
from environments.audit import record_audit
from environments.models import Environment, Event, event_payload

from . import outbound, signing
from .models import Attempt, Delivery, DeliveryEvent, Webhook
from .services import disable_webhook

logger = logging.getLogger(__name__)

USER_AGENT = "IntegrationTools-Webhooks/1.0"
TEST_EVENT_TYPE = "webhook.test"
# Deliveries due within this many seconds are put on the queue with a countdown;
# later ones are left to the sweeper (long broker countdowns outlive visibility timeouts).
_COUNTDOWN_LIMIT_SECONDS = 60
# Retry-After of a receiver is honoured up to WEBHOOK_RETRY_AFTER_MAX_SECONDS, for these statuses.
_RETRY_AFTER_STATUSES = {429, 503}


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


# --- Fan-out: inside the event's transaction ------------------------------------


def fan_out(event: Event) -> None:
    """Write the deliveries of a new event for every webhook that opted into its type."""
    webhooks = [
        webhook
        for webhook in Webhook.objects.filter(environment_id=event.environment_id)
        if webhook.subscribes_to(event.type)
    ]
    now = timezone.now()
    for webhook in webhooks:
        delivery = _open_batch(webhook, event) if webhook.max_events_per_request > 1 else None
        if delivery is None:
            active = webhook.state == Webhook.State.ACTIVE
            delivery = Delivery.objects.create(
                webhook=webhook,
                environment_id=event.environment_id,
                message_id=new_message_id(),
                event_count=1,
                event_types=event.type,
                next_attempt_at=now,
                enqueued_at=now if active else None,
            )
            if active:
                transaction.on_commit(lambda pk=delivery.pk: enqueue(pk), robust=True)
        DeliveryEvent.objects.create(delivery=delivery, event=event)


def _open_batch(webhook: Webhook, event: Event) -> Delivery | None:
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
    Delivery.objects.filter(pk=delivery.pk).update(event_count=F("event_count") + 1, event_types=" ".join(types)[:500])
    return delivery


# --- Queue ------------------------------------------------------------------------


def _queue(task_name: str, argument: int, countdown: float = 0) -> None:
    """Put a task on the queue. If the broker is down the work stays due in the database for the sweeper."""
    from . import tasks

    try:
        getattr(tasks, task_name).apply_async((argument,), countdown=countdown or None)
    except Exception:  # noqa: BLE001 - the database, not the broker, holds what is due
        logger.warning("could not queue %s(%s); the sweeper will pick it up", task_name, argument, exc_info=True)


def enqueue(delivery_id: int, countdown: float = 0) -> None:
    """Put a send task for one delivery on the queue."""
    _queue("deliver", delivery_id, countdown)


def enqueue_webhook_backlog(webhook_id: int) -> None:
    """Queue one task that sends a webhook's waiting deliveries in order (after a resume)."""
    _queue("drain_webhook", webhook_id)


def sweep(now: datetime.datetime | None = None, limit: int = 1000) -> int:
    """Re-enqueue deliveries that are due, not leased, and whose last enqueue is stale (or never was)."""
    now = now or timezone.now()
    stale = now - datetime.timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    due = list(
        Delivery.objects.filter(
            status__in=Delivery.WAITING,
            next_attempt_at__lte=now,
            webhook__state=Webhook.State.ACTIVE,
        )
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .order_by("next_attempt_at", "id")
        .values_list("pk", flat=True)[:limit]
    )
    if due:
        Delivery.objects.filter(pk__in=due).update(enqueued_at=now)
        for delivery_id in due:
            enqueue(delivery_id)
    return len(due)


# --- Sending ----------------------------------------------------------------------
#
# The hot path reads and writes with a few plain SQL statements instead of the
# ORM: on a small machine the ORM's per-query Python cost was most of the time
# spent per delivery (measured: 22 ms per attempt with the ORM, see the README's
# benchmark section). The SQL is portable (PostgreSQL, and SQLite for `make run`).


@dataclass
class _Sending:
    """What one attempt needs of its delivery and webhook, read in one query."""

    delivery_id: int
    message_id: str
    body: str
    attempt_count: int
    status: str
    is_test: bool
    webhook_id: int
    url: str
    state: str
    security_method: str
    verify_tls: bool
    payload_format: str
    max_events_per_request: int
    timeout_seconds: int
    extra_headers: dict

    @property
    def is_waiting(self) -> bool:
        return self.status in Delivery.WAITING


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _db_time(moment: datetime.datetime):
    return connection.ops.adapt_datetimefield_value(moment)


def _from_db_time(value) -> datetime.datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=datetime.UTC)


def _load(delivery_id: int) -> _Sending | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.id, d.message_id, d.body, d.attempt_count, d.status, d.is_test, w.id, w.url, w.state,"
            " w.security_method, w.verify_tls, w.payload_format, w.max_events_per_request, w.timeout_seconds,"
            " w.extra_headers FROM webhooks_delivery d JOIN webhooks_webhook w ON w.id = d.webhook_id"
            " WHERE d.id = %s",
            [delivery_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    sending = _Sending(*row)
    sending.is_test, sending.verify_tls = bool(sending.is_test), bool(sending.verify_tls)
    sending.extra_headers = _json(sending.extra_headers) or {}
    return sending


def _claim(sending: _Sending, now: datetime.datetime, manual: bool) -> bool:
    """Take a lease on the delivery in one atomic UPDATE; False if another worker holds it or it is not due."""
    lease = now + datetime.timedelta(seconds=2 * sending.timeout_seconds + settings.WEBHOOK_LEASE_MARGIN_SECONDS)
    sql = (
        "UPDATE webhooks_delivery SET leased_until = %s WHERE id = %s AND attempt_count = %s"
        " AND (leased_until IS NULL OR leased_until < %s)"
    )
    params = [_db_time(lease), sending.delivery_id, sending.attempt_count, _db_time(now)]
    if not manual:
        sql += (
            " AND status IN ('pending', 'retrying') AND next_attempt_at <= %s AND EXISTS (SELECT 1 FROM"
            " webhooks_webhook w WHERE w.id = webhooks_delivery.webhook_id AND w.state = 'active')"
        )
        params.append(_db_time(now))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def build_body(delivery_id: int, payload_format: str, max_events_per_request: int) -> str:
    """The request body: one event, or `{"events": [...]}` when the webhook batches."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.uid, e.type, e.occurred_at, env.slug, e.data FROM webhooks_deliveryevent de"
            " JOIN environments_event e ON e.id = de.event_id"
            " JOIN environments_environment env ON env.id = e.environment_id"
            " WHERE de.delivery_id = %s ORDER BY e.id",
            [delivery_id],
        )
        rows = cursor.fetchall()
    payloads = []
    for uid, event_type, occurred_at, slug, data in rows:
        data = _json(data)
        if payload_format == Webhook.PayloadFormat.THIN:
            data = {key: data[key] for key in ("id", "data_type", "external_id") if key in data}
        uid = uid if isinstance(uid, uuid.UUID) else uuid.UUID(uid)
        payloads.append(event_payload(uid, event_type, _from_db_time(occurred_at), slug, data))
    body = payloads[0] if len(payloads) == 1 and max_events_per_request == 1 else {"events": payloads}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def signing_keys(webhook_id: int, security_method: str, now: datetime.datetime) -> list[bytes]:
    """Keys that sign now: the webhook's live secrets, or its selected credentials that are active."""
    with connection.cursor() as cursor:
        if security_method == Webhook.SecurityMethod.CREDENTIALS:
            cursor.execute(
                "SELECT c.secret_encrypted FROM credentials_credential c"
                " JOIN webhooks_webhook_signing_credentials m ON m.credential_id = c.id"
                " WHERE m.webhook_id = %s AND c.invalidated_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > %s)"
                " ORDER BY c.created_at DESC",
                [webhook_id, _db_time(now)],
            )
            to_key = signing.key_of_client_secret
        else:
            cursor.execute(
                "SELECT secret_encrypted FROM webhooks_signingsecret"
                " WHERE webhook_id = %s AND (retires_at IS NULL OR retires_at > %s) ORDER BY created_at DESC",
                [webhook_id, _db_time(now)],
            )
            to_key = signing.key_of_signing_secret
        return [to_key(credential_secrets.decrypt(encrypted)) for (encrypted,) in cursor.fetchall()]


def request_headers(sending: _Sending, body: str, now: datetime.datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    keys = signing_keys(sending.webhook_id, sending.security_method, now)
    headers = dict(sending.extra_headers)
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": sending.message_id,
            "webhook-timestamp": str(timestamp),
        }
    )
    if keys:
        headers["webhook-signature"] = signing.signature_header(keys, sending.message_id, timestamp, body)
    return headers


REDACTED = "[not recorded]"


def recorded_headers(headers: dict[str, str], extra_headers: dict[str, str]) -> dict[str, str]:
    """The request headers as the history keeps them: extra header values may be credentials, so not those."""
    return {name: REDACTED if name in extra_headers else value for name, value in headers.items()}


def attempt_delivery(
    delivery_id: int,
    *,
    trigger: str = Attempt.Trigger.SCHEDULED,
    now: datetime.datetime | None = None,
    triggered_by: str = "",
) -> Attempt | None:
    """Send a delivery once, if it is due (or asked for by hand) and no one else is sending it.

    Returns the attempt made, or None when there was nothing to do. `now` lets
    tests move the clock instead of waiting for it.
    """
    manual = trigger in (Attempt.Trigger.RESEND, Attempt.Trigger.TEST)
    now = now or timezone.now()
    sending = _load(delivery_id)
    if sending is None:
        return None  # pruned or its webhook deleted: nothing left to do
    if not manual and (sending.state != Webhook.State.ACTIVE or not sending.is_waiting):
        return None
    if not _claim(sending, now, manual):
        return None
    try:
        return _send(sending, trigger, now, triggered_by)
    except BaseException:
        # Give the claim back so the sweeper can retry at once, not after the lease.
        Delivery.objects.filter(pk=delivery_id).update(leased_until=None)
        raise


def _send(sending: _Sending, trigger: str, now: datetime.datetime, triggered_by: str) -> Attempt:
    body = sending.body or build_body(sending.delivery_id, sending.payload_format, sending.max_events_per_request)
    headers = request_headers(sending, body, now)
    if "webhook-signature" in headers:
        result = outbound.post(
            sending.url, body.encode(), headers, timeout=sending.timeout_seconds, verify_tls=sending.verify_tls
        )
    else:
        result = outbound.Response(
            duration_ms=0, error="no_signing_key", error_detail="no active key signs this webhook; nothing was sent"
        )
    number = sending.attempt_count + 1
    attempt = Attempt(
        delivery_id=sending.delivery_id,
        number=number,
        trigger=trigger,
        started_at=now,
        duration_ms=result.duration_ms,
        url=sending.url,
        request_headers=recorded_headers(headers, sending.extra_headers),
        status_code=result.status_code,
        response_headers=result.headers,
        response_body=result.body,
        error=result.error,
        error_detail=result.error_detail,
        succeeded=result.succeeded,
        triggered_by=triggered_by[:255],
    )
    update = {
        "body": body,
        "attempt_count": number,
        "last_attempt_at": now,
        "last_status_code": result.status_code,
        "last_error": result.error,
        "last_duration_ms": result.duration_ms,
        "leased_until": None,
    }
    countdown = None
    gone = result.status_code == 410
    if result.succeeded:
        finished = now + datetime.timedelta(milliseconds=result.duration_ms)
        update.update(status=Delivery.Status.SUCCEEDED, delivered_at=finished, next_attempt_at=None)
    elif gone or sending.is_test or (trigger == Attempt.Trigger.RESEND and not sending.is_waiting):
        # Gone, a test, or a re-send of a finished delivery: no retry schedule applies.
        update.update(status=Delivery.Status.FAILED, next_attempt_at=None)
    else:
        delay = retry_delay(number, result)
        if delay is None:
            update.update(status=Delivery.Status.FAILED, next_attempt_at=None)
        else:
            due = now + datetime.timedelta(seconds=delay)
            update.update(status=Delivery.Status.RETRYING, next_attempt_at=due)
            if delay <= _COUNTDOWN_LIMIT_SECONDS:
                countdown = delay
                update["enqueued_at"] = due
            else:
                update["enqueued_at"] = None
    with transaction.atomic():
        _insert_attempt(attempt)
        _update_delivery(sending.delivery_id, update)
        if not sending.is_test:
            _record_webhook_outcome(sending.webhook_id, result, now)
    if countdown is not None and sending.state == Webhook.State.ACTIVE:
        enqueue(sending.delivery_id, countdown=countdown)
    return attempt


_ATTEMPT_COLUMNS = [
    "delivery_id", "number", "trigger", "started_at", "duration_ms", "url", "request_headers", "status_code",
    "response_headers", "response_body", "error", "error_detail", "succeeded", "triggered_by",
]  # fmt: skip


def _insert_attempt(attempt: Attempt) -> None:
    values = [getattr(attempt, column) for column in _ATTEMPT_COLUMNS]
    values[3] = _db_time(attempt.started_at)
    values[6], values[8] = json.dumps(attempt.request_headers), json.dumps(attempt.response_headers)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO webhooks_attempt ({', '.join(_ATTEMPT_COLUMNS)})"  # noqa: S608 - fixed column names
            f" VALUES ({', '.join(['%s'] * len(values))}) RETURNING id",
            values,
        )
        attempt.pk = cursor.fetchone()[0]


def _update_delivery(delivery_id: int, update: dict) -> None:
    values = [_db_time(value) if isinstance(value, datetime.datetime) else value for value in update.values()]
    assignments = ", ".join(f"{column} = %s" for column in update)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE webhooks_delivery SET {assignments} WHERE id = %s", [*values, delivery_id])  # noqa: S608


def retry_delay(attempts_made: int, result: outbound.Response) -> float | None:
    """Seconds until the next attempt after `attempts_made` attempts, or None when the schedule is spent."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if attempts_made >= len(schedule):
        return None
    delay = schedule[attempts_made]
    jitter = settings.WEBHOOK_RETRY_JITTER
    delay *= 1 + random.uniform(-jitter, jitter)  # noqa: S311 - spreading load, not security
    if result.status_code in _RETRY_AFTER_STATUSES:
        retry_after = parse_retry_after(result.headers.get("Retry-After", ""))
        if retry_after is not None:
            delay = min(retry_after, settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS)
    return max(delay, 0.0)


def parse_retry_after(value: str) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date. None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max((moment - timezone.now()).total_seconds(), 0.0)


def _record_webhook_outcome(webhook_id: int, result: outbound.Response, now: datetime.datetime) -> None:
    if result.succeeded:
        # At most once a second per webhook: under load every worker would otherwise queue on this row's lock.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE webhooks_webhook SET last_triggered_at = %s, failing_since = NULL WHERE id = %s"
                " AND (failing_since IS NOT NULL OR last_triggered_at IS NULL OR last_triggered_at < %s)",
                [_db_time(now), webhook_id, _db_time(now - datetime.timedelta(seconds=1))],
            )
        return
    # Failures are rare next to successes: the ORM is fine here.
    Webhook.objects.filter(pk=webhook_id).update(last_triggered_at=now)
    Webhook.objects.filter(pk=webhook_id, failing_since__isnull=True).update(failing_since=now)
    webhook = Webhook.objects.select_related("environment").get(pk=webhook_id)
    if result.status_code == 410:
        disable_webhook(webhook, "The receiver answered 410 Gone: it no longer wants these events.")
        return
    failing_for = now - webhook.failing_since
    if failing_for >= datetime.timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS):
        days = settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS
        disable_webhook(webhook, f"Every delivery has failed for {days:g} days in a row.")


def drain(webhook_id: int, *, limit: int = 200) -> int:
    """Send a webhook's due deliveries one by one, oldest first. Returns how many were attempted."""
    attempted = 0
    last_id = 0
    while attempted < limit:
        now = timezone.now()
        next_id = (
            Delivery.objects.filter(
                webhook_id=webhook_id, status__in=Delivery.WAITING, next_attempt_at__lte=now, pk__gt=last_id
            )
            .order_by("id")
            .values_list("pk", flat=True)
            .first()
        )
        if next_id is None:
            break
        last_id = next_id
        if attempt_delivery(next_id, trigger=Attempt.Trigger.SCHEDULED, now=now) is not None:
            attempted += 1
    return attempted


# --- Test deliveries and re-sends ---------------------------------------------------


def send_test(webhook: Webhook, *, request=None, actor=None, actor_label: str = "") -> Attempt:
    """Send a `webhook.test` event to this webhook now, whatever its state, and return the attempt."""
    environment: Environment = webhook.environment
    with transaction.atomic():
        event = Event.objects.create(
            environment=environment,
            type=TEST_EVENT_TYPE,
            data={"webhook": webhook.name, "message": "This is a test delivery from Integration Tools."},
        )
        delivery = Delivery.objects.create(
            webhook=webhook,
            environment=environment,
            message_id=new_message_id(),
            event_count=1,
            event_types=TEST_EVENT_TYPE,
            is_test=True,
            next_attempt_at=None,
        )
        DeliveryEvent.objects.create(delivery=delivery, event=event)
        audit = record_audit(
            "webhook.test_sent",
            request=request,
            actor=actor,
            actor_label=actor_label or None,
            target=webhook,
            environment=environment,
            details={"message_id": delivery.message_id},
        )
    return attempt_delivery(delivery.pk, trigger=Attempt.Trigger.TEST, triggered_by=audit.actor_label)


def resend(delivery: Delivery, *, request=None, actor=None, actor_label: str = "", audit: bool = True) -> Attempt:
    """Send a delivery again now, with the same `webhook-id` and body, and return the attempt."""
    webhook = delivery.webhook
    if webhook.state != Webhook.State.ACTIVE:
        raise ResendRefused(f"{webhook.name} is {webhook.get_state_display().lower()}: resume it to send")
    label = actor_label
    if audit:
        label = record_audit(
            "delivery.resent",
            request=request,
            actor=actor,
            actor_label=actor_label or None,
            target=webhook,
            environment=webhook.environment,
            details={"message_id": delivery.message_id, "status_before": delivery.status},
        ).actor_label
    attempt = attempt_delivery(delivery.pk, trigger=Attempt.Trigger.RESEND, triggered_by=label)
    if attempt is None:
        raise ResendRefused("this delivery is being sent right now; look again in a moment")
    return attempt


class ResendRefused(ValueError):
    """A re-send that cannot happen now, with the sentence saying why."""
