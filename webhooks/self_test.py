"""The signature self-test: does the receiver verify signatures, on the bytes as sent?

Two test deliveries go out: one correctly signed, one whose body changes after
signing. The receiver passes only if it accepts the first (2xx) and refuses the
second with an HTTP error. The signed body is deliberately not what a JSON library
writes (keys out of order, `\\u` escapes, `1.0`), so a receiver that parses and
re-serialises the body before verifying refuses the first and fails too.
`run` only records the request; a worker sends both (`carry_out`, see `manual_sends.py`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from environments.audit import record_audit
from portal.actor import SYSTEM_ACTOR, Actor

from .delivery.signing import SELF_TEST_MARKER
from .manual import send_by_hand
from .manual_sends import ask, new_test_delivery
from .models import Attempt, ManualSend, Webhook

EVENT_TYPE = "webhook.signature_test"


@dataclass(frozen=True)
class SelfTest:
    genuine: Attempt | None
    tampered: Attempt | None

    @property
    def passed(self) -> bool:
        return bool(
            self.genuine
            and self.genuine.succeeded
            and self.tampered
            and self.tampered.status_code is not None
            and not self.tampered.succeeded
        )

    @property
    def verdict(self) -> str:
        """What the result means, in one sentence a person can act on."""
        genuine, tampered = self.genuine, self.tampered
        if genuine is None or tampered is None:
            return "Not run: a test delivery was already being sent; try again."
        if self.passed:
            return (
                f"Passed: the receiver accepted the signed request ({genuine.status_code}) and refused the one "
                f"altered after signing ({tampered.status_code})."
            )
        if not genuine.succeeded:
            return (
                f"Failed: the receiver refused a correctly signed request ({genuine.outcome}). It may verify with "
                "another key, or parse and re-serialise the body before verifying: verify the raw bytes as received."
            )
        if tampered.succeeded:
            return (
                f"Failed: the receiver accepted a request whose signature does not match its body "
                f"({tampered.status_code}): it does not verify signatures, so anyone can post to it."
            )
        return f"Failed: the altered request got no HTTP answer ({tampered.outcome}), not a refusal."


def signed_body(webhook: Webhook) -> str:
    """A webhook.signature_test event whose bytes no JSON library would write itself."""
    event_id = f"evt_{uuid.uuid4().hex}"
    timestamp = timezone.now().isoformat().replace("+00:00", "Z")
    return (
        f'{{"type":"{EVENT_TYPE}","id":"{event_id}","timestamp":"{timestamp}",'
        f'"environment":{json.dumps(webhook.environment.slug)},'
        f'"data":{{"note":"caf\\u00e9 \\u2014 {SELF_TEST_MARKER}","ratio":1.0,"webhook":{json.dumps(webhook.name)}}}}}'
    )


def run(webhook: Webhook, *, actor: Actor = SYSTEM_ACTOR) -> ManualSend:
    """Ask a worker to send the signed and the altered test request; returns the send to watch.

    The worker audits the verdict in the name of `actor`, from the address it asked from."""
    with transaction.atomic():
        body = signed_body(webhook)
        data = json.loads(body)["data"]
        genuine = new_test_delivery(webhook, EVENT_TYPE, data, body=body)
        tampered = new_test_delivery(webhook, EVENT_TYPE, data, body=body)
        return ask(
            webhook,
            ManualSend.Kind.SELF_TEST,
            genuine,
            altered=tampered,
            requested_by=actor.label,
            user=actor.user,
            ip=actor.ip,
        )


def carry_out(send: ManualSend) -> None:
    """In the worker: send both requests, judge them, and record the verdict on the send and in the audit log."""
    label = send.requested_by
    genuine = send_by_hand(
        send, send.delivery_id, trigger=Attempt.Trigger.TEST, triggered_by=f"{label} (self-test, signed)"
    )
    tampered = send_by_hand(
        send,
        send.altered_id,
        trigger=Attempt.Trigger.TEST,
        triggered_by=f"{label} (self-test, altered after signing)",
        tamper=True,
    )
    result = SelfTest(genuine, tampered)
    send.attempt, send.altered_attempt, send.passed, send.result = genuine, tampered, result.passed, result.verdict
    record_audit(
        Actor.requested_by(send.requested_by_user, label=label, ip=send.requested_from),
        "webhook.signature_self_test",
        target=send.webhook,
        environment=send.webhook.environment,
        details={
            "passed": result.passed,
            "signed_answer": genuine.status_code,
            "altered_answer": tampered.status_code,
            "deliveries": [send.delivery.message_id, send.altered.message_id],
        },
    )


def result_of(send: ManualSend) -> SelfTest | None:
    """A finished self-test's result from its two attempts (None while a worker is still sending it)."""
    if not send.is_finished:
        return None
    return SelfTest(send.attempt, send.altered_attempt)
