"""Endpoint verification: a receiver proves it controls its URL before any data is sent there.

A webhook that needs it (its environment's kind is in WEBHOOK_VERIFICATION_REQUIRED_KINDS, and it is
new or its URL changed) is *unverified*: its deliveries are kept, not sent. The portal sends a signed
`webhook.verification` event carrying a random challenge; the receiver must answer 2xx with the
challenge in its body within the webhook's timeout. Then the webhook becomes active and what waited is
sent, oldest first. An Admin may waive verification for one webhook, with a reason. Both are audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit

from .configure import WebhookError, activate
from .manual import new_test_delivery
from .models import Attempt, Webhook
from .sending import send_now

EVENT_TYPE = "webhook.verification"


@dataclass(frozen=True)
class Verification:
    passed: bool
    result: str
    attempt: Attempt | None


def _outcome(attempt: Attempt | None, challenge: str) -> tuple[bool, str]:
    if attempt is None:
        return False, "not sent: a verification was already being sent; try again"
    if attempt.succeeded and challenge in attempt.response_body:
        return True, f"the receiver answered {attempt.status_code} with the challenge"
    if attempt.succeeded:
        return False, f"the receiver answered {attempt.status_code} but its body did not contain the challenge"
    if attempt.status_code is not None:
        return False, f"the receiver answered {attempt.outcome}"
    return False, f"no answer: {attempt.outcome}"


def verify(webhook: Webhook, *, request=None, actor=None, actor_label: str | None = None) -> Verification:
    """Send the challenge now; on success make the webhook active and send what waited."""
    challenge = secrets.token_urlsafe(24)
    data = {
        "challenge": challenge,
        "instructions": "Answer 2xx with this challenge in the response body to prove you control this URL.",
    }
    with transaction.atomic():
        delivery = new_test_delivery(webhook, EVENT_TYPE, data)
    label = actor_label or (request.user.get_username() if request is not None else "system")
    attempt = send_now(delivery.pk, trigger=Attempt.Trigger.TEST, triggered_by=f"{label} (URL verification)")
    passed, result = _outcome(attempt, challenge)
    with transaction.atomic():
        locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
        locked.verification_tried_at, locked.verification_result = timezone.now(), result
        if passed:
            locked.verified_at = locked.verification_tried_at
        locked.save(update_fields=["verification_tried_at", "verification_result", "verified_at"])
        if passed and locked.state == Webhook.State.UNVERIFIED:
            activate(locked, "webhook.verified", request=request, actor=actor, result=result)
        else:
            record_audit(
                "webhook.verified" if passed else "webhook.verification_failed",
                request=request,
                actor=actor,
                actor_label=actor_label,
                target=locked,
                environment=locked.environment,
                details={"result": result, "message_id": delivery.message_id},
            )
    webhook.refresh_from_db()
    return Verification(passed, result, attempt)


def waive(webhook: Webhook, reason: str, *, request=None, actor=None) -> int:
    """An Admin lets an unverified webhook send without proof (audited with the reason). Returns waiting count."""
    reason = " ".join(reason.split())[:300]
    if not reason:
        raise WebhookError("say why verification is waived: the reason is kept in the audit log")
    if webhook.state != Webhook.State.UNVERIFIED:
        raise WebhookError(f"{webhook.name} is not waiting for verification")
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk).update(verification_waived=reason)
        count = activate(webhook, "webhook.verification_waived", request=request, actor=actor, reason=reason)
    webhook.refresh_from_db()
    return count
