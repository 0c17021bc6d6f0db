"""Guided credential rotation: the seven steps of the reference procedure, each with its live state.

1. Generate a new credential for the client.
2. The integrator starts using it (seen: its first token exchange).
3. The new credential is added to the keys that sign the webhooks (both sign: receivers holding
   either verify, so there is no gap).
4. The old credential is invalidated.
5. The webhooks' signing keys are updated: the old credential no longer signs.
6. Receivers drop the old key: seen when each webhook's deliveries since then are received.
7. Done.

Rule 6 says a credential that signs a webhook cannot be invalidated. So the
action of step 4 removes the old credential from signing (step 5) and
invalidates it in one transaction; by then the new credential signs every
such webhook (step 3), so signatures never stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from credentials.models import Client, Credential
from credentials.services import invalidate_credential

from .configure import WebhookError, set_signing_credentials
from .models import Attempt, Webhook

ADD_NEW_TO_SIGNING = "add-new-to-signing"
RETIRE_OLD = "retire-old"


@dataclass
class Step:
    number: int
    title: str
    done: bool
    state: str
    action: str = ""  # ADD_NEW_TO_SIGNING, RETIRE_OLD, "new-credential", or "" (nothing to do in the portal)
    action_label: str = ""


@dataclass
class Rotation:
    client: Client
    new: Credential | None
    old: list[Credential]
    webhooks: list[Webhook]
    steps: list[Step] = field(default_factory=list)

    @property
    def current(self) -> Step | None:
        return next((step for step in self.steps if not step.done), None)


def _signing_webhooks(client: Client) -> list[Webhook]:
    return list(
        Webhook.objects.filter(
            environment=client.environment,
            security_method=Webhook.SecurityMethod.CREDENTIALS,
            signing_credentials__client=client,
        )
        .distinct()
        .prefetch_related("signing_credentials")
    )


def rotation_of(client: Client) -> Rotation:
    """Where the rotation of this client's credential stands, step by step, from live data."""
    now = timezone.now()
    credentials = list(client.credentials.order_by("created_at"))
    active = [credential for credential in credentials if credential.state_at(now) == "active"]
    webhooks = _signing_webhooks(client)
    signing_ids = {credential.pk for webhook in webhooks for credential in webhook.signing_credentials.all()}
    new = active[-1] if len(credentials) > 1 and active else None
    old = [
        credential
        for credential in credentials
        if new is not None
        and credential.created_at < new.created_at
        and (credential.state_at(now) == "active" or credential.pk in signing_ids)
    ]
    retired = [c for c in credentials if new is not None and c.created_at < new.created_at and c not in old]
    rotation = Rotation(client=client, new=new, old=old, webhooks=webhooks)
    steps = rotation.steps

    if new is None:
        steps.append(
            Step(
                1,
                "Generate a new credential",
                False,
                "Only one credential: create the one to rotate to.",
                "new-credential",
                "New credential",
            )
        )
    else:
        steps.append(Step(1, "Generate a new credential", True, f"“{new.name}” ({new.hint}…) exists."))

    used = new is not None and new.last_used_at is not None
    old_used_later = [c for c in old if used and c.last_used_at and c.last_used_at > new.last_used_at]
    if not used:
        state = "The integrator has not exchanged the new credential for a token yet."
    elif old_used_later:
        state = f"The new credential is in use, but “{old_used_later[0].name}” was used after it."
    else:
        state = f"The new credential was last used {new.last_used_at:%Y-%m-%d %H:%M} from {new.last_used_ip}."
    steps.append(Step(2, "The integrator switches to the new credential", used and not old_used_later, state))

    missing = [webhook for webhook in webhooks if new is not None and new not in webhook.signing_credentials.all()]
    old_signing = [webhook for webhook in webhooks if any(c in webhook.signing_credentials.all() for c in old)]
    if not webhooks:
        step3 = Step(
            3,
            "Add the new credential to the webhook signing keys",
            new is not None,
            "No webhook signs with this client's credentials.",
        )
    elif missing:
        names = ", ".join(webhook.name for webhook in missing)
        step3 = Step(
            3,
            "Add the new credential to the webhook signing keys",
            False,
            f"Not yet signing: {names}. Receivers should accept the new key before this.",
            ADD_NEW_TO_SIGNING,
            "Add the new credential to signing",
        )
    else:
        step3 = Step(
            3,
            "Add the new credential to the webhook signing keys",
            new is not None,
            "The new credential signs every webhook that uses this client's credentials.",
        )
    steps.append(step3)

    invalidated = new is not None and not any(c.state_at(now) == "active" for c in old)
    steps.append(
        Step(
            4,
            "Invalidate the old credential",
            invalidated,
            "No old credential is active."
            if invalidated
            else f"Still active: {', '.join(c.name for c in old if c.state_at(now) == 'active')}. Invalidating also "
            "removes it from webhook signing (step 5): a credential that signs cannot be invalidated.",
            "" if invalidated or not step3.done else RETIRE_OLD,
            "" if invalidated or not step3.done else "Remove from signing and invalidate",
        )
    )
    steps.append(
        Step(
            5,
            "Update the webhook signing keys",
            new is not None and not old_signing,
            "Only the new credential signs."
            if not old_signing
            else f"The old credential still signs: {', '.join(w.name for w in old_signing)}.",
        )
    )

    since = max((c.invalidated_at for c in retired + old if c.invalidated_at), default=None)
    unconfirmed = [
        webhook.name
        for webhook in webhooks
        if since is not None
        and not Attempt.objects.filter(delivery__webhook=webhook, started_at__gt=since, succeeded=True).exists()
    ]
    receivers_ok = steps[4].done and invalidated and since is not None and not unconfirmed
    if not webhooks:
        receivers_ok = steps[4].done and invalidated
    state = (
        "Deliveries signed only with the new credential are being received."
        if receivers_ok
        else "Receivers remove the old credential from the keys they verify with; a received delivery "
        "(or a test delivery) after the switch confirms it"
        + (f" (waiting for: {', '.join(unconfirmed)})." if unconfirmed else ".")
    )
    steps.append(Step(6, "Receivers stop accepting the old credential", receivers_ok, state))
    complete = all(step.done for step in steps)
    steps.append(Step(7, "Rotation complete", complete, "Done." if complete else "Not yet."))
    return rotation


def add_new_to_signing(client: Client, *, request=None, actor=None) -> list[str]:
    """Step 3: the new credential signs, next to the old, every webhook that signs with this client."""
    rotation = rotation_of(client)
    if rotation.new is None:
        raise WebhookError("create the new credential first (step 1)")
    changed = []
    with transaction.atomic():
        for webhook in rotation.webhooks:
            ids = [str(c.pk) for c in webhook.signing_credentials.all() if c.is_active]
            if str(rotation.new.pk) not in ids:
                set_signing_credentials(webhook, [*ids, str(rotation.new.pk)], request=request, actor=actor)
                changed.append(webhook.name)
    return changed


def retire_old(client: Client, *, reason: str = "rotated", request=None, actor=None) -> list[str]:
    """Steps 4 and 5: take the old credentials out of signing and invalidate them, in one transaction."""
    rotation = rotation_of(client)
    if rotation.new is None:
        raise WebhookError("create the new credential first (step 1)")
    if not rotation.steps[2].done:
        raise WebhookError("add the new credential to webhook signing first (step 3), so signatures never stop")
    retired = []
    with transaction.atomic():
        for webhook in rotation.webhooks:
            keep = [str(c.pk) for c in webhook.signing_credentials.all() if c not in rotation.old]
            if len(keep) != webhook.signing_credentials.count():
                set_signing_credentials(webhook, keep, request=request, actor=actor)
        for credential in rotation.old:
            if credential.is_active:
                invalidate_credential(credential, reason=reason, request=request, actor=actor)
                retired.append(credential.name)
    return retired
