"""What people do by hand: send a test delivery, re-send one delivery, retry a webhook's waiting deliveries now.

Each is audited, and each sends through the same path as the workers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit
from environments.models import Environment, Event

from . import queueing, retry_policy
from .fanout import new_message_id
from .models import Attempt, Delivery, DeliveryEvent, Webhook
from .sending import send_now

TEST_EVENT_TYPE = "webhook.test"


class ResendRefused(ValueError):
    """A re-send that cannot happen now, with the sentence saying why."""


def _refuse_unless_active(webhook: Webhook) -> None:
    if webhook.state != Webhook.State.ACTIVE:
        raise ResendRefused(f"{webhook.name} is {webhook.get_state_display().lower()}: resume it to send")


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
    return send_now(delivery.pk, trigger=Attempt.Trigger.TEST, triggered_by=audit.actor_label)


def resend(delivery: Delivery, *, request=None, actor=None, actor_label: str = "", audit: bool = True) -> Attempt:
    """Send a delivery again now, with the same `webhook-id` and body, and return the attempt."""
    webhook = delivery.webhook
    _refuse_unless_active(webhook)
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
    attempt = send_now(delivery.pk, trigger=Attempt.Trigger.RESEND, triggered_by=label)
    if attempt is None:
        raise ResendRefused("this delivery is being sent right now; look again in a moment")
    return attempt


def retry_now(webhook: Webhook, *, request=None, actor=None, actor_label: str = "") -> int:
    """Make every waiting delivery of an active webhook due now and start sending them, oldest first.

    Returns how many were waiting for a later retry. Audited.
    """
    _refuse_unless_active(webhook)
    with transaction.atomic():
        count = retry_policy.make_waiting_due(webhook.pk, timezone.now())
        record_audit(
            "webhook.retried_now",
            request=request,
            actor=actor,
            actor_label=actor_label or None,
            target=webhook,
            environment=webhook.environment,
            details={"deliveries": count},
        )
        copies = settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK
        transaction.on_commit(lambda: queueing.drain(webhook.pk, copies), robust=True)
    return count
