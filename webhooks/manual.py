"""What people do by hand: send a test delivery, re-send one delivery, retry a webhook's waiting deliveries now.

Each is audited. A test and a re-send are recorded and queued (`manual_sends.py`): a worker sends them,
through the same path as every delivery, and writes what came back where the page and the commands read it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from environments.audit import audited, record_audit
from environments.models import Environment
from portal.actor import SYSTEM_ACTOR, Actor

from . import manual_sends
from .delivery import ledger, queueing, retry_policy
from .delivery.sending import attempt_delivery
from .examples import example_data
from .models import Attempt, Delivery, ManualSend, Webhook

TEST_EVENT_TYPE = "webhook.test"


class ResendRefused(ValueError):
    """A re-send that cannot happen now, with the sentence saying why."""


class NotNow(Exception):
    """A send by hand that must wait a moment: its webhook's lock is busy, or someone else is sending it."""


def _refuse_unless_active(webhook: Webhook) -> None:
    if webhook.state != Webhook.State.ACTIVE:
        raise ResendRefused(f"{webhook.name} is {webhook.get_state_display().lower()}: resume it to send")


def test_types(webhook: Webhook) -> list[str]:
    """What a test may send: the generic `webhook.test`, or an example of any type the webhook subscribes to."""
    return [TEST_EVENT_TYPE, *sorted(webhook.event_types)]


def send_test(webhook: Webhook, *, event_type: str = TEST_EVENT_TYPE, actor: Actor = SYSTEM_ACTOR) -> ManualSend:
    """Ask a worker to send a test to this webhook now, whatever its state; returns the send to watch.

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
        delivery = manual_sends.new_test_delivery(webhook, event_type, data)
        record_audit(
            actor,
            "webhook.test_sent",
            target=webhook,
            environment=environment,
            details={"message_id": delivery.message_id, "event_type": event_type},
        )
        return manual_sends.ask(webhook, ManualSend.Kind.TEST, delivery, requested_by=actor.label, user=actor.user)


def resend(delivery: Delivery, *, actor: Actor = SYSTEM_ACTOR, audit: bool = True) -> ManualSend:
    """Ask a worker to send a delivery again now, with the same `webhook-id` and body; returns the send to watch."""
    webhook = delivery.webhook
    _refuse_unless_active(webhook)
    if delivery.payload_erased_at is not None:
        raise ResendRefused(f"the payload of {delivery.message_id} was erased: there is nothing left to send")
    with transaction.atomic():
        if audit:
            record_audit(
                actor,
                "delivery.resent",
                target=webhook,
                environment=webhook.environment,
                details={"message_id": delivery.message_id, "status_before": delivery.status},
            )
        return manual_sends.ask(webhook, ManualSend.Kind.RESEND, delivery, requested_by=actor.label, user=actor.user)


def send_by_hand(
    send: ManualSend,
    delivery_id: int,
    *,
    trigger: str,
    triggered_by: str,
    tamper=False,
    while_status: tuple[str, ...] = (),
) -> Attempt:
    """Send one of a send's deliveries once (in the worker): its attempt, found again if an earlier run made it.

    Raises NotNow when the webhook's lock is busy or another worker holds the
    delivery's lease: the caller queues the send again a moment later.
    """
    after = send.attempts_before if delivery_id == send.delivery_id else 0
    # Only an attempt this send could have made: someone else's re-send of the same delivery is not its result.
    made = Attempt.objects.filter(
        delivery_id=delivery_id,
        number__gt=after,
        trigger=trigger,
        triggered_by=triggered_by,
        started_at__gte=send.requested_at,
    ).order_by("number")
    if (attempt := made.first()) is not None:
        return attempt  # a worker that stopped after sending: the receiver is not sent it twice
    try:
        attempt = attempt_delivery(
            delivery_id,
            trigger=trigger,
            triggered_by=triggered_by,
            tamper=tamper,
            busy_raises=True,
            while_status=while_status,
            # A receiver that hangs holds an I/O thread, not this worker thread: the send is put back and,
            # once the answer is recorded, found in the history above when it runs again.
            may_park=True,
        )
    except ledger.ClaimBusy:
        raise NotNow("its webhook's lock is busy") from None
    if attempt is None:
        raise NotNow("it is being sent (its answer not yet recorded), or its webhook's sending slots are taken")
    return attempt


def carry_out_test(send: ManualSend) -> None:
    """A test delivery or a re-send, in the worker: send it and keep the attempt as the result.

    A re-send is judged again when it goes, not only when it was asked for: a webhook paused (or a
    payload erased) in between, while it waited for a worker, is not sent to.
    """
    if send.kind == ManualSend.Kind.TEST:
        attempt = send_by_hand(send, send.delivery_id, trigger=Attempt.Trigger.TEST, triggered_by=send.requested_by)
    else:
        problem = _resend_problem_now(send.delivery_id)
        if problem:
            send.passed, send.result = False, f"not sent: {problem}"
            return
        attempt = send_by_hand(
            send,
            send.delivery_id,
            trigger=Attempt.Trigger.RESEND,
            triggered_by=send.requested_by,
            # The claim itself checks the webhook is active and the payload kept, whatever the delivery's status.
            while_status=tuple(Delivery.Status.values),
        )
    send.attempt, send.passed, send.result = attempt, attempt.succeeded, _answer(attempt)


def _resend_problem_now(delivery_id: int) -> str:
    """Why a re-send asked for earlier must not go now ('' when it may)."""
    delivery = Delivery.objects.select_related("webhook").get(pk=delivery_id)
    webhook = delivery.webhook
    if webhook.state != Webhook.State.ACTIVE:
        return f"{webhook.name} was {webhook.get_state_display().lower()} before a worker could send it"
    if delivery.payload_erased_at is not None:
        return f"the payload of {delivery.message_id} was erased before a worker could send it"
    return ""


def _answer(attempt: Attempt) -> str:
    answer = f"the receiver answered {attempt.status_code}" if attempt.status_code else f"no answer: {attempt.outcome}"
    return f"{answer} in {attempt.duration_ms} ms"


def retry_now(webhook: Webhook, *, actor: Actor = SYSTEM_ACTOR) -> int:
    """Make every waiting delivery of an active webhook due now and start sending them, oldest first.

    Returns how many were waiting for a later retry. Audited.
    """
    _refuse_unless_active(webhook)
    with audited(actor, "webhook.retried_now", target=webhook, environment=webhook.environment) as audit:
        count = retry_policy.make_waiting_due(webhook.pk, timezone.now())
        audit.details = {"deliveries": count}
        copies = webhook.max_in_flight
        transaction.on_commit(lambda: queueing.drain(webhook.pk, copies), robust=True)
    return count
