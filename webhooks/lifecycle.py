"""A webhook's lifecycle: its states, the transitions between them, who may make each, and what each leaves.

States (`Webhook.State`; pages show `Webhook.condition`, which splits *active* in two):

- **unverified**: its receiver has not proved it controls the URL (environments whose kind is in
  WEBHOOK_VERIFICATION_REQUIRED_KINDS). Deliveries are kept, not sent.
- **active**: deliveries are sent. Its condition is *healthy*, or *failing* from the first failed attempt
  after a success (`failing_since`) until the next success.
- **paused**: someone stopped it. New events keep arriving as waiting deliveries.
- **disabled**: the engine stopped it (`disabled_reason` says why). Deliveries keep waiting.

Transitions: from → to, the function, who may make it, and the audit event it leaves. "People" are the
environment's Program Directors and Admins, on the webhook's page; commands act as the system.

- (new) → active, or unverified: `configure.create_webhook`; people, `manage.py create_webhook`;
  `webhook.created` (its details say whether verification is required).
- any → unverified, when the URL changes where verification is required: `configure.update_webhook`;
  people; `webhook.updated` (its changes name the verification).
- unverified → active, the receiver answered the challenge: `activate`, from `verification.carry_out`;
  a worker, in the name of whoever asked (people, `manage.py verify_webhook`, the system); `webhook.verified`.
- unverified → active without proof: `waive_verification`; Admins only, with a reason (also
  `manage.py verify_webhook --waive`); `webhook.verification_waived`.
- active → paused: `pause_webhook`; people; `webhook.paused`.
- paused or disabled → active: `resume_webhook`, sending or discarding what waited; people; `webhook.resumed`.
- any → disabled: `disable_webhook`; the engine (`delivery.retry_policy`) when a receiver answers 410 Gone
  or has failed for WEBHOOK_DISABLE_AFTER_FAILING_DAYS; `webhook.disabled`, with the reason.
- healthy → failing, and back: the engine, on a failed attempt (`delivery.retry_policy.note_failure` sets
  `failing_since`) and on the next success (`delivery.ledger` clears it); no audit event: the attempts
  are their record.
- any → deleted: `configure.delete_webhook`; people; `webhook.deleted`.

Every transition to *active* clears `failing_since` and sends what waited at once, oldest first (`activate`),
except a resume that discards what waited. The audit details of a state change are
`{"from": …, "to": …}`, the reason when there is one, and what the transition counted.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit
from portal.actor import SYSTEM_ACTOR, Actor

from .configure import WebhookError
from .delivery import queueing
from .models import Delivery, Webhook


def pause_webhook(webhook: Webhook, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Stop sending; new events keep arriving as waiting deliveries."""
    if webhook.state != Webhook.State.ACTIVE:
        raise WebhookError(f"{webhook.name} is {webhook.get_state_display().lower()}, not active")
    _set_state(webhook, Webhook.State.PAUSED, "webhook.paused", actor=actor)


def resume_webhook(webhook: Webhook, *, discard_waiting: bool = False, actor: Actor = SYSTEM_ACTOR) -> int:
    """Make a paused or disabled webhook active again; send what waits, oldest first, or discard it.

    Returns how many waiting deliveries are sent (or were discarded).
    """
    if webhook.state == Webhook.State.ACTIVE:
        raise WebhookError(f"{webhook.name} is already active")
    if webhook.state == Webhook.State.UNVERIFIED:
        raise WebhookError(f"{webhook.name} is unverified: verify its URL (or an Admin may waive verification)")
    waiting = Delivery.objects.filter(webhook=webhook, status__in=Delivery.WAITING, is_test=False)
    with transaction.atomic():
        count = waiting.count()
        if discard_waiting:
            count = waiting.update(status=Delivery.Status.DISCARDED, next_attempt_at=None)
            _set_state(
                webhook,
                Webhook.State.ACTIVE,
                "webhook.resumed",
                actor=actor,
                waiting=count,
                waiting_deliveries="discarded",
            )
        else:
            activate(webhook, "webhook.resumed", actor=actor, waiting_deliveries="sent")
    return count


def activate(webhook: Webhook, action: str, *, actor: Actor = SYSTEM_ACTOR, **details: Any) -> int:
    """Make the webhook active (audited as `action`) and send what waits for it at once, oldest first.

    Returns how many deliveries were waiting. Resuming, a waived and a passed verification all end here.
    """
    waiting = Delivery.objects.filter(webhook=webhook, status__in=Delivery.WAITING, is_test=False)
    with transaction.atomic():
        count = waiting.count()
        _set_state(webhook, Webhook.State.ACTIVE, action, actor=actor, waiting=count, **details)
        # Due now: those that were waiting for a retry while held need not wait out their backoff.
        waiting.update(next_attempt_at=timezone.now(), enqueued_at=timezone.now())
        copies = webhook.max_in_flight
        transaction.on_commit(lambda: queueing.drain(webhook.pk, copies), robust=True)
    return count


def waive_verification(webhook: Webhook, reason: str, *, actor: Actor = SYSTEM_ACTOR) -> int:
    """An Admin lets an unverified webhook send without proof (audited with the reason). Returns waiting count.

    The page lets only Admins call this."""
    reason = " ".join(reason.split())[:300]
    if not reason:
        raise WebhookError("say why verification is waived: the reason is kept in the audit log")
    if webhook.state != Webhook.State.UNVERIFIED:
        raise WebhookError(f"{webhook.name} is not waiting for verification")
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk).update(verification_waived=reason)
        count = activate(webhook, "webhook.verification_waived", actor=actor, reason=reason)
    webhook.refresh_from_db()
    return count


def disable_webhook(webhook: Webhook, reason: str, *, actor: Actor = SYSTEM_ACTOR) -> None:
    """Stop sending until someone resumes it; deliveries keep waiting. The engine calls this (retry_policy)."""
    if webhook.state == Webhook.State.DISABLED:
        return
    _set_state(webhook, Webhook.State.DISABLED, "webhook.disabled", reason=reason, actor=actor)


def _set_state(webhook: Webhook, state: str, action: str, *, actor: Actor, reason: str = "", **details: Any) -> None:
    """Move the webhook (locked) to `state` and audit it as `action`; `webhook` is updated to match."""
    with transaction.atomic():
        locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
        previous = locked.state
        locked.state = state
        locked.disabled_reason = reason if state == Webhook.State.DISABLED else ""
        if state == Webhook.State.ACTIVE:
            locked.failing_since = None
        locked.save(update_fields=["state", "disabled_reason", "failing_since"])
        record_audit(
            actor,
            action,
            target=locked,
            environment=locked.environment,
            details={"from": previous, "to": state, **({"reason": reason} if reason else {}), **details},
        )
    webhook.state, webhook.disabled_reason, webhook.failing_since = (
        locked.state,
        locked.disabled_reason,
        locked.failing_since,
    )
