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

import datetime
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
    facts = _facts_of(client)
    rotation = Rotation(
        client=client, new=facts.new, old=facts.old, webhooks=facts.webhooks, live_old_tokens=_live_old_tokens(facts)
    )
    steps = rotation.steps
    steps.append(_generate_new(facts))
    steps.append(_integrator_switches(facts))
    steps.append(_add_new_to_signing(facts))
    steps.append(_invalidate_old(facts, rotation.live_old_tokens, new_signs=steps[2].done))
    steps.append(_update_signing(facts))
    steps.append(_receivers_drop_old(facts))
    steps.append(_complete(steps, rotation.live_old_tokens))
    return rotation


@dataclass
class _Facts:
    """What every step is judged from, read once."""

    client: Client
    now: datetime.datetime
    credentials: list[Credential]  # oldest first
    new: Credential | None
    # Older than the new one and still active or still signing: what the rotation moves away from.
    old: list[Credential]
    # Older than the new one, neither active nor signing: rotated away before.
    retired: list[Credential]
    webhooks: list[Webhook]

    @property
    def old_active(self) -> list[Credential]:
        return [c for c in self.old if c.state_at(self.now) == "active"]

    @property
    def invalidated(self) -> bool:
        """Step 4 is done: no old credential is active."""
        return self.new is not None and not self.old_active

    @property
    def old_signing(self) -> list[Webhook]:
        return [webhook for webhook in self.webhooks if any(c in webhook.signing_credentials.all() for c in self.old)]


def _facts_of(client: Client) -> _Facts:
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
    return _Facts(client, now, credentials, new, old, retired, webhooks)


def _live_old_tokens(facts: _Facts) -> int:
    """Unexpired, unrevoked tokens that credentials other than the new one obtained."""
    if facts.new is None:
        return 0
    return AccessToken.objects.filter(
        credential__in=[c.pk for c in facts.credentials if c.pk != facts.new.pk],
        revoked_at__isnull=True,
        expires_at__gt=facts.now,
    ).count()


def _generate_new(facts: _Facts) -> Step:
    """Step 1: a newer credential than the one to rotate away from exists."""
    new = facts.new
    if new is None:
        return Step(
            1,
            "Generate a new credential",
            False,
            "Only one credential: create the one to rotate to.",
            "new-credential",
            "New credential",
        )
    return Step(1, "Generate a new credential", True, f"“{new.name}” ({new.hint}…) exists.")


def _integrator_switches(facts: _Facts) -> Step:
    """Step 2: the new credential obtained a token, and no old one was used after it."""
    new = facts.new
    used = new is not None and new.last_used_at is not None
    old_used_later = [c for c in facts.old if used and c.last_used_at and c.last_used_at > new.last_used_at]
    if not used:
        state = "The integrator has not exchanged the new credential for a token yet."
    elif old_used_later:
        state = f"The new credential is in use, but “{old_used_later[0].name}” was used after it."
    else:
        state = f"The new credential was last used {new.last_used_at:%Y-%m-%d %H:%M} from {new.last_used_ip}."
    return Step(2, "The integrator switches to the new credential", used and not old_used_later, state)


def _add_new_to_signing(facts: _Facts) -> Step:
    """Step 3: the new credential signs every webhook that signs with this client's credentials."""
    new, webhooks = facts.new, facts.webhooks
    missing = [webhook for webhook in webhooks if new is not None and new not in webhook.signing_credentials.all()]
    if not webhooks:
        return Step(
            3,
            "Add the new credential to the webhook signing keys",
            new is not None,
            "No webhook signs with this client's credentials.",
        )
    if missing:
        names = ", ".join(webhook.name for webhook in missing)
        return Step(
            3,
            "Add the new credential to the webhook signing keys",
            False,
            f"Not yet signing: {names}. Receivers should accept the new key before this.",
            ADD_NEW_TO_SIGNING,
            "Add the new credential to signing",
        )
    return Step(
        3,
        "Add the new credential to the webhook signing keys",
        new is not None,
        "The new credential signs every webhook that uses this client's credentials.",
    )


def _invalidate_old(facts: _Facts, live_old_tokens: int, *, new_signs: bool) -> Step:
    """Step 4: no old credential is active; offered once the new one signs (step 3), then to revoke its tokens."""
    invalidated = facts.invalidated
    tokens_note = (
        " "
        + ngettext(
            "%(count)d token it obtained still works until it expires: if it may be compromised, revoke it.",
            "%(count)d tokens it obtained still work until they expire: if it may be compromised, revoke them.",
            live_old_tokens,
        )
        % {"count": live_old_tokens}
        if live_old_tokens
        else ""
    )
    if facts.new is None:
        state = "After steps 1 to 3: the old credential stops obtaining tokens and stops signing webhooks."
    elif invalidated:
        state = "The old credential no longer obtains tokens." + tokens_note
    else:
        state = (
            f"Will invalidate {', '.join(f'“{c.name}”' for c in facts.old_active)}: it stops obtaining tokens and "
            "stops signing webhooks (step 5; a credential that signs cannot be invalidated). If it may be "
            "compromised, tick the box and every token it obtained stops working at once too."
        )
    if invalidated and live_old_tokens:
        action, label = REVOKE_OLD_TOKENS, "Revoke its tokens now"
    elif invalidated or not new_signs:
        action, label = "", ""
    else:
        action, label = RETIRE_OLD, "Remove from signing and invalidate"
    return Step(4, "Invalidate the old credential", invalidated, state, action, label)


def _update_signing(facts: _Facts) -> Step:
    """Step 5: no old credential signs any more (done by step 4's action)."""
    old_signing = facts.old_signing
    if old_signing:
        state = f"The old credential still signs: {', '.join(w.name for w in old_signing)}."
    elif facts.new is not None:
        state = "Only the new credential signs."
    else:
        state = "After step 4: only the new credential signs."
    return Step(5, "Update the webhook signing keys", facts.new is not None and not old_signing, state)


def _receivers_drop_old(facts: _Facts) -> Step:
    """Step 6: someone confirmed, after the old credential was invalidated, that receivers dropped its key."""
    confirmation = _receivers_confirmed(facts)
    if confirmation is not None:
        state = f"Confirmed by {confirmation.actor_label} at {confirmation.occurred_at:%Y-%m-%d %H:%M %Z}."
    elif facts.webhooks:
        state = (
            "The people running the receivers remove the old credential from the keys they verify with, then "
            "confirm it here. A received delivery does not prove it: a receiver that still accepts the old key "
            "receives too."
        )
    else:
        state = "No webhook signs with this client's credentials: nothing for receivers to change; confirm to finish."
    to_confirm = facts.invalidated and confirmation is None
    return Step(
        6,
        "Receivers stop accepting the old credential",
        confirmation is not None,
        state,
        CONFIRM_RECEIVERS if to_confirm else "",
        "The receivers have dropped the old key" if to_confirm else "",
    )


def _receivers_confirmed(facts: _Facts) -> AuditEvent | None:
    """The confirmation recorded since the last old credential was invalidated, once step 4 is done."""
    since = max((c.invalidated_at for c in facts.retired + facts.old if c.invalidated_at), default=None)
    if since is None or not facts.invalidated:
        return None
    client = facts.client
    return (
        AuditEvent.objects.filter(
            action=RECEIVERS_CONFIRMED, target_type=Client._meta.label_lower, target_id=str(client.pk)
        )
        .filter(occurred_at__gte=since)
        .first()
    )


def _complete(steps: list[Step], live_old_tokens: int) -> Step:
    """Step 7: every step above is done and no token of the old credential still works."""
    steps_done = all(step.done for step in steps)
    if steps_done and not live_old_tokens:
        state = "Done."
    elif steps_done:
        state = ngettext(
            "Not yet: %(count)d token the old credential obtained still works (step 4).",
            "Not yet: %(count)d tokens the old credential obtained still work (step 4).",
            live_old_tokens,
        ) % {"count": live_old_tokens}
    else:
        state = "When every step above is done and no token of the old credential still works."
    return Step(7, "Rotation complete", state == "Done.", state)


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
