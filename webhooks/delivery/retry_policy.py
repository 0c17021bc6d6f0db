"""What happens after an attempt: done, retried later (and when), or given up; and when a webhook is disabled.

The schedule is Standard Webhooks' (at once, 5 s, 5 min, 30 min, 2 h, 5 h,
10 h, 14 h, 20 h, 24 h; WEBHOOK_RETRY_SCHEDULE) with jitter; `Retry-After` on
429/503 is honoured up to WEBHOOK_RETRY_AFTER_MAX_SECONDS. While a webhook
fails, a probe now and then re-sends its oldest waiting delivery early; a
probe does not advance the schedule, and its success makes everything that
waits due at once, so a receiver that comes back gets its backlog in seconds.
"""

from __future__ import annotations

import datetime
import email.utils
import random
from typing import cast

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import ngettext

from ..lifecycle import disable_webhook
from ..models import Attempt, Delivery, Webhook
from . import outbound
from .ledger import Claimed, DeliveryUpdate

# Statuses whose Retry-After is honoured.
RETRY_AFTER_STATUSES = {429, 503}
# Retries due within this many seconds go on the queue with a countdown; later
# ones are left to the sweeper (long broker countdowns outlive visibility timeouts).
COUNTDOWN_LIMIT_SECONDS = 60


def retry_delay(scheduled_attempts: int, result: outbound.Response) -> float | None:
    """Seconds until the next attempt after `scheduled_attempts` attempts, or None when the schedule is spent."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    if scheduled_attempts >= len(schedule):
        return None
    delay = schedule[scheduled_attempts]
    jitter = settings.WEBHOOK_RETRY_JITTER
    delay *= 1 + random.uniform(-jitter, jitter)  # noqa: S311 - spreading load, not security
    if result.status_code in RETRY_AFTER_STATUSES:
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


def after_attempt(
    delivery: Claimed, trigger: str, result: outbound.Response, now: datetime.datetime, body: str
) -> tuple[DeliveryUpdate, float | None]:
    """The delivery's new state after this attempt, and a countdown when its retry goes on the queue now."""
    number = delivery.attempt_count + 1
    update = DeliveryUpdate(
        status=delivery.status,
        body=body,
        attempt_count=number,
        probes=delivery.probes,
        last_attempt_at=now,
        last_status_code=result.status_code,
        last_error=result.error,
        last_duration_ms=result.duration_ms,
    )
    if result.succeeded:
        update.status = Delivery.Status.SUCCEEDED
        update.delivered_at = now + datetime.timedelta(milliseconds=result.duration_ms)
        return update, None
    gone = result.status_code == 410
    if gone or delivery.is_test or (trigger == Attempt.Trigger.RESEND and not delivery.is_waiting):
        # Gone, a test, or a re-send of a finished delivery: no retry schedule applies.
        update.status = Delivery.Status.FAILED
        return update, None
    if trigger == Attempt.Trigger.PROBE:
        # The receiver is still down: the delivery keeps its place in the schedule.
        update.probes = delivery.probes + 1
        update.next_attempt_at = delivery.next_attempt_at
        return update, None
    paced = slow_down_seconds(result.status_code, result.headers)
    if paced is not None:
        # The receiver asked us to wait: the delivery waits that long, and keeps its place in the schedule.
        update.probes = delivery.probes + 1
        return _retry_in(update, paced, now)
    delay = retry_delay(number - delivery.probes, result)
    if delay is None:
        update.status = Delivery.Status.FAILED
        return update, None
    return _retry_in(update, delay, now)


def _retry_in(update: DeliveryUpdate, delay: float, now: datetime.datetime) -> tuple[DeliveryUpdate, float | None]:
    due = now + datetime.timedelta(seconds=delay)
    update.status = Delivery.Status.RETRYING
    update.next_attempt_at = due
    if delay <= COUNTDOWN_LIMIT_SECONDS:
        update.enqueued_at = due
        return update, delay
    return update, None


def slow_down_seconds(status_code: int | None, headers: dict[str, str]) -> float | None:
    """How long a receiver asked us to wait: a 429 with a Retry-After we can read (capped), else None.

    That is pacing, not failure: the webhook is slowed down for that long
    (`slow_down`) and neither the delivery's schedule nor the webhook's failing
    spell counts it. A 429 without Retry-After, or a 503, is a failure as any.
    """
    if status_code != 429:
        return None
    value = next((value for name, value in (headers or {}).items() if name.lower() == "retry-after"), "")
    seconds = parse_retry_after(value)
    if seconds is None:
        return None
    return min(seconds, float(settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS))


def slow_down_asked(status_code: int | None, headers: dict[str, str]) -> bool:
    return slow_down_seconds(status_code, headers) is not None


def slow_down(webhook_id: int, status_code: int | None, headers: dict[str, str], now: datetime.datetime) -> None:
    """Send nothing to the webhook until its receiver's Retry-After has passed (whichever worker sends)."""
    seconds = slow_down_seconds(status_code, headers)
    if seconds is None:
        return
    until = now + datetime.timedelta(seconds=seconds)
    reason = f"the receiver answered 429 Too Many Requests with Retry-After {seconds:g} s"
    Webhook.objects.filter(pk=webhook_id).filter(
        models.Q(slowed_until__isnull=True) | models.Q(slowed_until__lt=until)
    ).update(slowed_until=until, slowed_reason=reason[:200], last_triggered_at=now)


def probe_interval(failing_for: datetime.timedelta) -> float:
    """Seconds between probes of a failing webhook: a tenth of how long it has failed, within bounds.

    A receiver down for two minutes is probed every 12 s; one down for days
    every WEBHOOK_PROBE_MAX_SECONDS, so a long outage adds few attempts.
    """
    seconds = failing_for.total_seconds() / 10
    shortest: float = settings.WEBHOOK_PROBE_MIN_SECONDS
    longest: float = settings.WEBHOOK_PROBE_MAX_SECONDS
    return min(max(seconds, shortest), longest)


def make_waiting_due(webhook_id: int, now: datetime.datetime) -> int:
    """Every waiting delivery of the webhook becomes due now (it recovered, or someone said "retry now")."""
    return Delivery.objects.filter(
        webhook_id=webhook_id, status__in=Delivery.WAITING, is_test=False, next_attempt_at__gt=now
    ).update(next_attempt_at=now, enqueued_at=now)


def note_failure(webhook_id: int, status_code: int | None, now: datetime.datetime) -> None:
    """A failed attempt: mark the webhook failing, and disable it on 410 or after failing too long."""
    Webhook.objects.filter(pk=webhook_id).update(last_triggered_at=now)
    Webhook.objects.filter(pk=webhook_id, failing_since__isnull=True).update(failing_since=now)
    webhook = Webhook.objects.select_related("environment").get(pk=webhook_id)
    if status_code == 410:
        disable_webhook(webhook, Webhook.GONE_REASON)
        return
    failing_for = now - cast(datetime.datetime, webhook.failing_since)  # set just above when it was not
    if failing_for >= datetime.timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS):
        days = settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS
        failed_for = ngettext("%(days)g day", "%(days)g days", days) % {"days": days}
        disable_webhook(webhook, f"Every delivery has failed for {failed_for} in a row.")
