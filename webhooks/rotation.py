"""Guided credential rotation: the seven steps of the reference procedure, each with its live state.

1. Generate a new credential for the client.
2. The integrator starts using it (seen: its first token exchange).
3. The new credential is added to the keys that sign the webhooks (both sign: receivers holding
   either verify, so there is no gap).
4. The old credential is invalidated.
5. The webhooks' signing keys are updated: the old credential no longer signs.
6. Receivers drop the old key: the integrator confirms it (recorded in the audit log); a received
   delivery cannot prove it, since receivers that still accept the old key receive too.
7. Done: and no token the old credential obtained still works.

Rule 6 says a credential that signs a webhook cannot be invalidated. So the
action of step 4 removes the old credential from signing (step 5) and
invalidates it in one transaction; by then the new credential signs every
such webhook (step 3), so signatures never stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.translation import ngettext

from credentials.models import AccessToken, Client, Credential
from credentials.services import invalidate_credential, revoke_tokens
from environments.audit import record_audit
from environments.models import AuditEvent
from portal.actor import SYSTEM_ACTOR, Actor

from .configure import WebhookError, set_signing_credentials
from .models import Webhook

ADD_NEW_TO_SIGNING = "add-new-to-signing"
RETIRE_OLD = "retire-old"
REVOKE_OLD_TOKENS = "revoke-old-tokens"
CONFIRM_RECEIVERS = "confirm-receivers"
RECEIVERS_CONFIRMED = "rotation.receivers_confirmed"


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
    # Unexpired, unrevoked tokens the old credentials obtained: they still read and write data.
    live_old_tokens: int = 0
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

    old_active = [c for c in old if c.state_at(now) == "active"]
    invalidated = new is not None and not old_active
    rotation.live_old_tokens = (
        AccessToken.objects.filter(
            credential__in=[c.pk for c in credentials if new is None or c.pk != new.pk],
            revoked_at__isnull=True,
            expires_at__gt=now,
        ).count()
        if new is not None
        else 0
    )
    tokens_note = (
        " "
        + ngettext(
            "%(count)d token it obtained still works until it expires: if it may be compromised, revoke it.",
            "%(count)d tokens it obtained still work until they expire: if it may be compromised, revoke them.",
            rotation.live_old_tokens,
        )
        % {"count": rotation.live_old_tokens}
        if rotation.live_old_tokens
        else ""
    )
    if new is None:
        state4 = "After steps 1 to 3: the old credential stops obtaining tokens and stops signing webhooks."
    elif invalidated:
        state4 = "The old credential no longer obtains tokens." + tokens_note
    else:
        state4 = (
            f"Will invalidate {', '.join(f'“{c.name}”' for c in old_active)}: it stops obtaining tokens and stops "
            "signing webhooks (step 5; a credential that signs cannot be invalidated). If it may be compromised, "
            "tick the box and every token it obtained stops working at once too."
        )
    if invalidated and rotation.live_old_tokens:
        action4, label4 = REVOKE_OLD_TOKENS, "Revoke its tokens now"
    elif invalidated or not step3.done:
        action4, label4 = "", ""
    else:
        action4, label4 = RETIRE_OLD, "Remove from signing and invalidate"
    steps.append(Step(4, "Invalidate the old credential", invalidated, state4, action4, label4))
    steps.append(
        Step(
            5,
            "Update the webhook signing keys",
            new is not None and not old_signing,
            ("Only the new credential signs." if new is not None else "After step 4: only the new credential signs.")
            if not old_signing
            else f"The old credential still signs: {', '.join(w.name for w in old_signing)}.",
        )
    )

    since = max((c.invalidated_at for c in retired + old if c.invalidated_at), default=None)
    confirmation = (
        AuditEvent.objects.filter(
            action=RECEIVERS_CONFIRMED, target_type=Client._meta.label_lower, target_id=str(client.pk)
        )
        .filter(occurred_at__gte=since)
        .first()
        if since is not None and invalidated
        else None
    )
    if confirmation is not None:
        state6 = f"Confirmed by {confirmation.actor_label} at {confirmation.occurred_at:%Y-%m-%d %H:%M %Z}."
    elif webhooks:
        state6 = (
            "The people running the receivers remove the old credential from the keys they verify with, then "
            "confirm it here. A received delivery does not prove it: a receiver that still accepts the old key "
            "receives too."
        )
    else:
        state6 = "No webhook signs with this client's credentials: nothing for receivers to change; confirm to finish."
    steps.append(
        Step(
            6,
            "Receivers stop accepting the old credential",
            confirmation is not None,
            state6,
            CONFIRM_RECEIVERS if invalidated and confirmation is None else "",
            "The receivers have dropped the old key" if invalidated and confirmation is None else "",
        )
    )
    steps_done = all(step.done for step in steps)
    if steps_done and not rotation.live_old_tokens:
        state7 = "Done."
    elif steps_done:
        state7 = ngettext(
            "Not yet: %(count)d token the old credential obtained still works (step 4).",
            "Not yet: %(count)d tokens the old credential obtained still work (step 4).",
            rotation.live_old_tokens,
        ) % {"count": rotation.live_old_tokens}
    else:
        state7 = "When every step above is done and no token of the old credential still works."
    steps.append(Step(7, "Rotation complete", state7 == "Done.", state7))
    return rotation


def add_new_to_signing(client: Client, *, actor: Actor = SYSTEM_ACTOR) -> list[str]:
    """Step 3: the new credential signs, next to the old, every webhook that signs with this client."""
    rotation = rotation_of(client)
    if rotation.new is None:
        raise WebhookError("create the new credential first (step 1)")
    changed = []
    with transaction.atomic():
        for webhook in rotation.webhooks:
            ids = [str(c.pk) for c in webhook.signing_credentials.all() if c.is_active]
            if str(rotation.new.pk) not in ids:
                set_signing_credentials(webhook, [*ids, str(rotation.new.pk)], actor=actor)
                changed.append(webhook.name)
    return changed


def retire_old(
    client: Client, *, compromised: bool = False, reason: str = "rotated", actor: Actor = SYSTEM_ACTOR
) -> list[str]:
    """Steps 4 and 5: take the old credentials out of signing and invalidate them, in one transaction.

    When the old credential may be compromised, every token it obtained is revoked in the same transaction.
    """
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
                set_signing_credentials(webhook, keep, actor=actor)
        for credential in rotation.old:
            if credential.is_active:
                why = "compromised: rotated" if compromised else reason
                invalidate_credential(credential, reason=why, actor=actor)
                retired.append(f"“{credential.name}” invalidated")
            if compromised:
                why = "compromised: rotated"
                count = revoke_tokens(credential=credential, reason=why, actor=actor)
                retired.append(f"{count} of its tokens revoked")
    return retired


def revoke_old_tokens(client: Client, *, actor: Actor = SYSTEM_ACTOR) -> list[str]:
    """Step 4, afterwards: end at once every token the old credentials obtained."""
    rotation = rotation_of(client)
    if rotation.new is None:
        raise WebhookError("create the new credential first (step 1)")
    done = []
    for credential in client.credentials.exclude(pk=rotation.new.pk):
        count = revoke_tokens(credential=credential, reason="rotated", actor=actor)
        if count:
            done.append(f"{count} token{'s' if count != 1 else ''} of “{credential.name}” revoked")
    return done


def confirm_receivers(client: Client, *, actor: Actor = SYSTEM_ACTOR) -> list[str]:
    """Step 6: the integrator says the receivers no longer accept the old key (audited)."""
    rotation = rotation_of(client)
    if not rotation.steps[3].done:
        raise WebhookError("invalidate the old credential first (step 4)")
    record_audit(
        actor,
        RECEIVERS_CONFIRMED,
        target=client,
        environment=client.environment,
        details={"webhooks": [webhook.name for webhook in rotation.webhooks]},
    )
    return ["the receivers' switch is recorded"]
