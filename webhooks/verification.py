"""Endpoint verification: a receiver proves it controls its URL before any data is sent there.

A webhook that needs it (its environment's kind is in WEBHOOK_VERIFICATION_REQUIRED_KINDS, and it is
new or its URL changed) is *unverified*: its deliveries are kept, not sent. A worker sends a signed
`webhook.verification` event carrying a random challenge; the receiver must answer 2xx with the
challenge on its own (the whole body, or a JSON object whose top-level `challenge` is it) within the
webhook's timeout: a receiver that echoes whatever it is sent does not pass. Then the webhook becomes
active and what waited is sent, oldest first. An Admin may waive verification for one webhook, with a
reason (`lifecycle.waive_verification`). Both are audited.
"""

from __future__ import annotations

import json

from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit
from portal.actor import SYSTEM_ACTOR, Actor

from .lifecycle import activate
from .manual import send_by_hand
from .manual_sends import ask_for_verification
from .models import Attempt, ManualSend, Webhook


def answers_challenge(body: str, challenge: str) -> bool:
    """Whether a response body is the challenge on its own: the whole body (spaces around it aside), or a JSON
    object whose top-level `challenge` is it."""
    text = body.strip()
    if text == challenge:
        return True
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("challenge") == challenge


def _outcome(attempt: Attempt, challenge: str) -> tuple[bool, str]:
    if attempt.succeeded and answers_challenge(attempt.response_body, challenge):
        return True, f"the receiver answered {attempt.status_code} with the challenge"
    if attempt.succeeded:
        return False, (
            f"the receiver answered {attempt.status_code} but not with the challenge on its own "
            '(the whole body, or {"challenge": "…"})'
        )
    if attempt.status_code is not None:
        return False, f"the receiver answered {attempt.outcome}"
    return False, f"no answer: {attempt.outcome}"


def verify(webhook: Webhook, *, actor: Actor = SYSTEM_ACTOR) -> ManualSend:
    """Ask a worker to send the challenge now; returns the send to watch (its result, once in, says why).

    The worker audits the outcome in the name of `actor`, from the address it asked from."""
    return ask_for_verification(webhook, requested_by=actor.label, user=actor.user, ip=actor.ip)


def carry_out(send: ManualSend) -> None:
    """In the worker: send the challenge, judge the answer; on success make the webhook active and send what
    waited."""
    attempt = send_by_hand(
        send, send.delivery_id, trigger=Attempt.Trigger.TEST, triggered_by=f"{send.requested_by} (URL verification)"
    )
    passed, result = _outcome(attempt, send.challenge)
    send.attempt, send.passed, send.result = attempt, passed, result
    with transaction.atomic():
        locked = Webhook.objects.select_for_update().select_related("environment").get(pk=send.webhook_id)
        newer = ManualSend.objects.filter(webhook_id=send.webhook_id, kind=send.kind, pk__gt=send.pk).exists()
        if attempt.url != locked.url or newer:
            # The URL changed (or a newer challenge went out) while this one waited: its answer proves
            # nothing about the URL the webhook has now, so it neither verifies nor fails the webhook.
            send.passed, send.result = False, "superseded: the URL or its challenge changed while this one was sent"
            return
        locked.verification_tried_at, locked.verification_result = timezone.now(), result
        if passed:
            locked.verified_at = locked.verification_tried_at
        locked.save(update_fields=["verification_tried_at", "verification_result", "verified_at"])
        if passed and locked.state == Webhook.State.UNVERIFIED:
            # Named by the user who asked, or "system": not by a command's label, as it always has been.
            requester = Actor.requested_by(send.requested_by_user, ip=send.requested_from)
            activate(locked, "webhook.verified", actor=requester, result=result)
        else:
            record_audit(
                Actor.requested_by(send.requested_by_user, label=send.requested_by, ip=send.requested_from),
                "webhook.verified" if passed else "webhook.verification_failed",
                target=locked,
                environment=locked.environment,
                details={"result": result, "message_id": send.delivery.message_id},
            )
