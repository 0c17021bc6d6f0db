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

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from credentials import secrets as credential_secrets
from environments.audit import record_audit
from environments.models import Environment, Event

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


def enqueue(delivery_id: int, countdown: float = 0) -> None:
    """Put a send task on the queue. If the broker is down, the sweeper will do it later."""
    from .tasks import deliver

    try:
        deliver.apply_async((delivery_id,), countdown=countdown or None)
    except Exception:  # noqa: BLE001 - the row is due in the database; the sweeper re-enqueues it
        logger.warning("could not enqueue delivery %s; the sweeper will pick it up", delivery_id, exc_info=True)


def enqueue_webhook_backlog(webhook_id: int) -> None:
    """Queue one task that sends a webhook's waiting deliveries in order (after a resume)."""
    from .tasks import drain_webhook

    try:
        drain_webhook.delay(webhook_id)
    except Exception:  # noqa: BLE001 - see enqueue()
        logger.warning("could not enqueue backlog of webhook %s; the sweeper will pick it up", webhook_id)


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


def _claim(delivery: Delivery, now: datetime.datetime, manual: bool) -> bool:
    lease = now + datetime.timedelta(
        seconds=2 * delivery.webhook.timeout_seconds + settings.WEBHOOK_LEASE_MARGIN_SECONDS
    )
    claim = Delivery.objects.filter(pk=delivery.pk).filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
    if not manual:
        claim = claim.filter(
            status__in=Delivery.WAITING, next_attempt_at__lte=now, attempt_count=delivery.attempt_count
        )
    return claim.update(leased_until=lease) == 1


def build_body(delivery: Delivery) -> str:
    """The request body: one event, or `{"events": [...]}` when the webhook batches."""
    events = list(delivery.events.select_related("environment").order_by("id"))
    thin = delivery.webhook.payload_format == Webhook.PayloadFormat.THIN
    payloads = [_thin(event) if thin else event.as_payload() for event in events]
    body: object = payloads[0] if len(payloads) == 1 and delivery.webhook.max_events_per_request == 1 else None
    if body is None:
        body = {"events": payloads}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _thin(event: Event) -> dict:
    payload = event.as_payload()
    payload["data"] = {key: event.data[key] for key in ("id", "data_type", "external_id") if key in event.data}
    return payload


def signing_keys(webhook: Webhook, now: datetime.datetime) -> list[bytes]:
    """Keys that sign now: the webhook's live secrets, or its selected credentials that are active."""
    if webhook.security_method == Webhook.SecurityMethod.CREDENTIALS:
        return [
            signing.key_of_client_secret(credential_secrets.decrypt(credential.secret_encrypted))
            for credential in webhook.signing_credentials.all()
            if credential.state_at(now) == "active"
        ]
    return [
        signing.key_of_signing_secret(credential_secrets.decrypt(secret.secret_encrypted))
        for secret in webhook.signing_secrets.all()
        if secret.is_signing_at(now)
    ]


def request_headers(webhook: Webhook, message_id: str, body: str, now: datetime.datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    keys = signing_keys(webhook, now)
    headers = dict(webhook.extra_headers)
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
    try:
        delivery = Delivery.objects.select_related("webhook", "environment").get(pk=delivery_id)
    except Delivery.DoesNotExist:
        return None  # pruned or its webhook deleted: nothing left to do
    webhook = delivery.webhook
    if not manual and (webhook.state != Webhook.State.ACTIVE or not delivery.is_waiting):
        return None
    if not _claim(delivery, now, manual):
        return None
    try:
        return _send(delivery, webhook, trigger, now, triggered_by)
    except BaseException:
        # Give the claim back so the sweeper can retry at once, not after the lease.
        Delivery.objects.filter(pk=delivery.pk).update(leased_until=None)
        raise


def _send(delivery: Delivery, webhook: Webhook, trigger: str, now: datetime.datetime, triggered_by: str) -> Attempt:
    body = delivery.body or build_body(delivery)
    headers = request_headers(webhook, delivery.message_id, body, now)
    if "webhook-signature" in headers:
        result = outbound.post(
            webhook.url,
            body.encode(),
            headers,
            timeout=webhook.timeout_seconds,
            verify_tls=webhook.verify_tls,
        )
    else:
        result = outbound.Response(
            duration_ms=0, error="no_signing_key", error_detail="no active key signs this webhook; nothing was sent"
        )
    number = delivery.attempt_count + 1
    attempt = Attempt(
        delivery=delivery,
        number=number,
        trigger=trigger,
        started_at=now,
        duration_ms=result.duration_ms,
        url=webhook.url,
        request_headers=headers,
        status_code=result.status_code,
        response_headers=result.headers,
        response_body=result.body,
        error=result.error,
        error_detail=result.error_detail,
        succeeded=result.succeeded,
        triggered_by=triggered_by[:255],
    )
    finished = now + datetime.timedelta(milliseconds=result.duration_ms)
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
    if result.succeeded:
        update.update(status=Delivery.Status.SUCCEEDED, delivered_at=finished, next_attempt_at=None)
    elif (
        result.status_code == 410 or delivery.is_test or (trigger == Attempt.Trigger.RESEND and not delivery.is_waiting)
    ):
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
        attempt.save()
        Delivery.objects.filter(pk=delivery.pk).update(**update)
        _record_webhook_outcome(webhook, result, now, is_test=delivery.is_test)
    if countdown is not None and webhook.state == Webhook.State.ACTIVE:
        transaction.on_commit(lambda: enqueue(delivery.pk, countdown=countdown), robust=True)
    for name, value in update.items():
        setattr(delivery, name, value)
    return attempt


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


def _record_webhook_outcome(webhook: Webhook, result: outbound.Response, now: datetime.datetime, is_test: bool):
    if is_test:
        return
    if result.succeeded:
        Webhook.objects.filter(pk=webhook.pk).update(last_triggered_at=now, failing_since=None)
        return
    Webhook.objects.filter(pk=webhook.pk).update(last_triggered_at=now)
    Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=True).update(failing_since=now)
    webhook.refresh_from_db(fields=["failing_since", "state"])
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
