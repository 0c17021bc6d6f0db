"""Promote an integration from one environment to another (Test to Live): its webhooks and the clients they serve.

`plan_promotion` drafts what would be created and what differs (event types, fields or scopes the target's
published schema lacks, settings that are never copied); nothing is written. `promote` creates it all in
one transaction. No secret or key travels: each webhook gets a new signing secret and key pair, each client
a new credential, shown once; extra header values and receiver authentication (possibly a receiver's own
credentials) stay behind. The target's rules apply, so a webhook promoted to Live waits unverified until its
receiver answers the verification. The portal page and `promote_integration` both call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from credentials.models import Client
from credentials.scopes import unknown_scopes
from credentials.services import CredentialError, create_client, create_credential
from environments.audit import record_audit
from environments.models import Environment
from portal.actor import SYSTEM_ACTOR, Actor

from . import options
from .configure import WebhookFields, WebhookInvalid, create_webhook, verification_required
from .models import Webhook


class PromotionRefused(ValueError):
    """A promotion that cannot be drafted or carried out, with the sentence saying why."""


@dataclass
class PlannedClient:
    """An API client served by a promoted webhook, as it would be created in the target."""

    source: Client
    scopes: list[str]
    missing_scopes: list[str]
    existing: Client | None  # the target already has a client of this name: it is used, not created


@dataclass
class PlannedWebhook:
    """One webhook as it would be created in the target, and what differs from the source."""

    source: Webhook
    event_types: list[str]
    payload_fields: dict[str, list[str]]
    client: PlannedClient | None
    differences: list[str] = field(default_factory=list)
    problem: str = ""  # why it cannot be promoted at all


@dataclass
class PromotionPlan:
    """The reviewable draft of a promotion: nothing is written until `promote` is called with it."""

    source: Environment
    target: Environment
    webhooks: list[PlannedWebhook]
    verification: bool  # the target makes new webhooks prove their receiver first

    @property
    def problems(self) -> list[str]:
        return [f"{each.source.name}: {each.problem}" for each in self.webhooks if each.problem]


@dataclass
class Promoted:
    """What a promotion created; the secrets are here only, to be shown once."""

    webhook: Webhook
    signing_secret: str | None
    client: Client | None = None
    client_secret: str | None = None


def plan_promotion(source: Environment, target: Environment, names: Iterable[str] = ()) -> PromotionPlan:
    """Draft the promotion of `source`'s webhooks named in `names` (all of them when empty) to `target`."""
    if source.pk == target.pk:
        raise PromotionRefused("choose another environment to promote to")
    if source.configuration_id != target.configuration_id:
        raise PromotionRefused(
            f"{target.slug} runs configuration {target.configuration.slug}, not {source.configuration.slug}: "
            "an integration moves only between environments that share a configuration"
        )
    webhooks = list(source.webhooks.select_related("client").order_by("name"))
    wanted = list(dict.fromkeys(names))
    if wanted:
        by_name = {webhook.name: webhook for webhook in webhooks} | {str(w.pk): w for w in webhooks}
        unknown = [name for name in wanted if name not in by_name]
        if unknown:
            raise PromotionRefused(f"{source.slug} has no webhook {', '.join(unknown)}")
        webhooks = list(dict.fromkeys(by_name[name] for name in wanted))
    if not webhooks:
        raise PromotionRefused(f"{source.slug} has no webhook to promote")
    planned = [_plan_webhook(webhook, target) for webhook in webhooks]
    return PromotionPlan(source, target, planned, verification_required(target))


def _plan_webhook(webhook: Webhook, target: Environment) -> PlannedWebhook:
    known_types = set(target.event_types)
    event_types = [name for name in webhook.event_types if name in known_types]
    differences = [f"event type {name} does not exist there" for name in webhook.event_types if name not in known_types]
    target_fields = {name: set(spec["fields"]) for name, spec in target.schema.get("data_types", {}).items()}
    payload_fields = {}
    for data_type, names in webhook.payload_fields.items():
        if data_type not in target_fields:
            continue
        payload_fields[data_type] = [name for name in names if name in target_fields[data_type]]
        differences += [
            f"field {data_type}.{name} does not exist there" for name in names if name not in target_fields[data_type]
        ]
    if webhook.extra_headers:
        differences.append(
            f"extra headers not copied (their values may be credentials): {', '.join(sorted(webhook.extra_headers))}"
        )
    if hasattr(webhook, "receiver_auth"):
        differences.append("receiver authentication not copied: set it up there with the receiver's Live credentials")
    if webhook.security_method == Webhook.SecurityMethod.CREDENTIALS and webhook.client is None:
        differences.append("signs with a new signing secret: its signing credentials belong to clients not promoted")
    planned = PlannedWebhook(webhook, event_types, payload_fields, _plan_client(webhook.client, target), differences)
    if planned.client:
        differences += [f"scope {scope} does not exist there" for scope in planned.client.missing_scopes]
    if not event_types:
        planned.problem = "none of its event types exists there"
    elif planned.client and not planned.client.scopes and planned.client.existing is None:
        planned.problem = f"none of the scopes of the client it serves, {planned.client.source.name}, exists there"
    elif target.webhooks.filter(name__iexact=webhook.name).exists():
        planned.problem = f"{target.name} already has a webhook named “{webhook.name}”"
    return planned


def _plan_client(client: Client | None, target: Environment) -> PlannedClient | None:
    if client is None:
        return None
    missing = unknown_scopes(target, client.scopes)
    scopes = [scope for scope in client.scopes if scope not in missing]
    existing = target.clients.filter(name=client.name).first()
    return PlannedClient(client, scopes, missing, existing)


def promote(plan: PromotionPlan, *, actor: Actor = SYSTEM_ACTOR) -> list[Promoted]:
    """Create the planned webhooks (and the clients they serve) in the target, all or nothing; audited."""
    if plan.problems:
        raise PromotionRefused("; ".join(plan.problems))
    try:
        with transaction.atomic():
            return [_promote_one(plan, planned, actor) for planned in plan.webhooks]
    except (WebhookInvalid, CredentialError) as error:
        raise PromotionRefused(str(error)) from None


def _promote_one(plan: PromotionPlan, planned: PlannedWebhook, actor: Actor) -> Promoted:
    source = planned.source
    client, client_secret, credential_ids = _promoted_client(planned.client, plan.target, actor)
    method = source.security_method
    if method == Webhook.SecurityMethod.CREDENTIALS and not credential_ids:
        method = Webhook.SecurityMethod.SIGNING_SECRET
    values = {option.name: getattr(source, option.name) for option in options.OPTIONS}
    values.update(payload_fields=planned.payload_fields, extra_headers={})
    fields = WebhookFields(
        name=source.name,
        url=source.url,
        event_types=planned.event_types,
        security_method=method,
        signing_credential_ids=credential_ids if method == Webhook.SecurityMethod.CREDENTIALS else [],
        client_id=client.client_id if client else None,
        **values,
    )
    webhook, secret = create_webhook(plan.target, fields, actor=actor)
    record_audit(
        actor,
        "webhook.promoted",
        target=webhook,
        environment=plan.target,
        details={
            "from_environment": plan.source.slug,
            "from_webhook": str(source.pk),
            "differences": planned.differences,
        },
    )
    return Promoted(webhook, secret if method == Webhook.SecurityMethod.SIGNING_SECRET else None, client, client_secret)


def _promoted_client(
    planned: PlannedClient | None, target: Environment, actor: Actor
) -> tuple[Client | None, str | None, list[str]]:
    """The client in the target (created with a new credential, or the existing one) and its credential ids."""
    if planned is None:
        return None, None, []
    if planned.existing is not None:
        ids = [str(c.id) for c in planned.existing.credentials.filter(invalidated_at__isnull=True)]
        return planned.existing, None, ids
    client = create_client(target, planned.source.name, planned.scopes, actor=actor)
    credential, secret = create_credential(client, "Promoted", actor=actor)
    return client, secret, [str(credential.id)]


def plan_lines(plan: PromotionPlan) -> list[str]:
    """The draft in sentences, one per line: what the command prints and the page lists."""
    lines = [f"Promote from {plan.source.slug} to {plan.target.slug}:"]
    for planned in plan.webhooks:
        source = planned.source
        lines.append(f"- webhook “{source.name}” to {source.url}: {', '.join(planned.event_types) or 'no event type'}")
        if planned.client:
            verb = "uses the existing" if planned.client.existing else "creates"
            lines.append(f"  {verb} client “{planned.client.source.name}” ({', '.join(planned.client.scopes)})")
        lines += [f"  differs: {difference}" for difference in planned.differences]
        if planned.problem:
            lines.append(f"  cannot be promoted: {planned.problem}")
    lines.append("New signing secrets, key pairs and client secrets are generated there, each shown once.")
    if plan.verification:
        lines.append(
            f"{plan.target.name} requires verification: each webhook stays unverified until its receiver answers."
        )
    return lines


def promoted_as_json(plan: PromotionPlan, created: list[Promoted]) -> dict:
    """What `promote_integration --json` prints: the new webhooks and clients, with their secrets (shown once)."""
    return {
        "from": plan.source.slug,
        "to": plan.target.slug,
        "webhooks": [
            {
                "id": str(each.webhook.pk),
                "name": each.webhook.name,
                "state": each.webhook.state,
                "event_types": each.webhook.event_types,
                "signing_secret": each.signing_secret,
                "client_id": each.client.client_id if each.client else None,
                "client_secret": each.client_secret,
            }
            for each in created
        ],
    }
