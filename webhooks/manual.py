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
from .examples import example_data
from .fanout import new_message_id
from .models import Attempt, Delivery, DeliveryEvent, Webhook
from .sending import send_now

TEST_EVENT_TYPE = "webhook.test"


class ResendRefused(ValueError):
    """A re-send that cannot happen now, with the sentence saying why."""


def _refuse_unless_active(webhook: Webhook) -> None:
    if webhook.state != Webhook.State.ACTIVE:
        raise ResendRefused(f"{webhook.name} is {webhook.get_state_display().lower()}: resume it to send")


def test_types(webhook: Webhook) -> list[str]:
    """What a test may send: the generic `webhook.test`, or an example of any type the webhook subscribes to."""
    return [TEST_EVENT_TYPE, *sorted(webhook.event_types)]


def send_test(
    webhook: Webhook, *, event_type: str = TEST_EVENT_TYPE, request=None, actor=None, actor_label: str = ""
) -> Attempt:
    """Send a test to this webhook now, whatever its state, and return the attempt.

    A `webhook.test` event, or the example payload of a subscribed event type (the one its page shows).
    The delivery is marked as a test in the history and carries a `webhook-test: true` header.
    """
    environment: Environment = webhook.environment
    if event_type not in test_types(webhook):
        raise ResendRefused(f"{webhook.name} does not subscribe to {event_type[:127]}: choose one of its event types")
    if event_type == TEST_EVENT_TYPE:
        data = {"webhook": webhook.name, "message": "This is a test delivery from Integration Tools."}
    else:
        data = example_data(environment, event_type)
    with transaction.atomic():
        delivery = new_test_delivery(webhook, event_type, data)
        audit = record_audit(
            "webhook.test_sent",
            request=request,
            actor=actor,
            actor_label=actor_label or None,
            target=webhook,
            environment=environment,
            details={"message_id": delivery.message_id, "event_type": event_type},
        )
    return send_now(delivery.pk, trigger=Attempt.Trigger.TEST, triggered_by=audit.actor_label)


def new_test_delivery(webhook: Webhook, event_type: str, data: dict, *, body: str = "") -> Delivery:
    """A delivery marked as a test, carrying one new event; `body` fixes the exact bytes it sends."""
    event = Event.objects.create(environment=webhook.environment, type=event_type, data=data)
    delivery = Delivery.objects.create(
        webhook=webhook,
        environment=webhook.environment,
        message_id=new_message_id(),
        event_count=1,
        event_types=event_type,
        is_test=True,
        next_attempt_at=None,
        body=body,
    )
    DeliveryEvent.objects.create(delivery=delivery, event=event)
    return delivery


def resend(delivery: Delivery, *, request=None, actor=None, actor_label: str = "", audit: bool = True) -> Attempt:
    """Send a delivery again now, with the same `webhook-id` and body, and return the attempt."""
    webhook = delivery.webhook
    _refuse_unless_active(webhook)
    if delivery.payload_erased_at is not None:
        raise ResendRefused(f"the payload of {delivery.message_id} was erased: there is nothing left to send")
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
