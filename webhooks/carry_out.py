"""The worker's side of sends asked for by hand (see `manual_sends.py`): lease the row, send, write the result.

One worker at a time carries a send out (a lease on its row, as bulk re-sends
have). When the webhook's claim lock is busy, or another worker holds the
delivery's lease, the send is put back and queued again a moment later: it is
never refused, and never left pending.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from portal.actor import SYSTEM_ACTOR

from . import manual, self_test, verification
from .delivery import queueing
from .models import ManualSend, Webhook

# How soon a send that could not go yet (lock busy, delivery being sent) is tried again.
RETRY_SECONDS = 1.0

_CARRY_OUT: dict[str, Callable[[ManualSend], None]] = {
    ManualSend.Kind.TEST: manual.carry_out_test,
    ManualSend.Kind.RESEND: manual.carry_out_test,
    ManualSend.Kind.SELF_TEST: self_test.carry_out,
    ManualSend.Kind.VERIFICATION: verification.carry_out,
}


def carry_out(send_id: int) -> ManualSend | None:
    """Carry out one send and record its result. Returns it finished, or None when it is not this worker's to
    finish now (gone, already finished, taken by another worker, or put back to try again in a moment)."""
    now = timezone.now()
    send = (
        ManualSend.objects.select_related("webhook__environment", "delivery", "altered", "requested_by_user")
        .filter(pk=send_id, finished_at__isnull=True)
        .first()
    )
    if send is None:
        return None
    # Long enough for both requests of a self-test, each within its timeout.
    lease = now + datetime.timedelta(
        seconds=2 * (send.webhook.timeout_seconds + 1) + settings.WEBHOOK_LEASE_MARGIN_SECONDS
    )
    taken = (
        ManualSend.objects.filter(pk=send_id, finished_at__isnull=True)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .update(leased_until=lease)
    )
    if not taken:
        return None
    try:
        _CARRY_OUT[send.kind](send)
    except manual.NotNow:
        ManualSend.objects.filter(pk=send_id).update(leased_until=None, enqueued_at=timezone.now())
        queueing.manual_send(send_id, countdown=RETRY_SECONDS)
        return None
    send.finished_at, send.leased_until = timezone.now(), None
    send.save(update_fields=["finished_at", "leased_until", "attempt", "altered_attempt", "passed", "result"])
    return send


def ask_verification_left_over(webhook_id: int) -> ManualSend | None:
    """Ask for the verification an earlier version queued as a bare task, unless it is no longer needed
    (the webhook is verified, or a verification is already waiting for a worker)."""
    webhook = Webhook.objects.filter(pk=webhook_id, state=Webhook.State.UNVERIFIED).first()
    if webhook is None:
        return None
    if ManualSend.objects.filter(webhook=webhook, kind=ManualSend.Kind.VERIFICATION, finished_at__isnull=True).exists():
        return None
    return verification.verify(webhook, actor=SYSTEM_ACTOR)
