"""What people must be told about now: each occasion found in the data, named by a stable key.

Occasions are read from the state the rest of the portal keeps (a webhook's failing
spell, its disable audit event, a credential's expiry, a finished recovery), so no
other module has to remember to notify: a scan finds them, and the outbox tells
each person once per key.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from credentials.models import Credential
from environments.models import AuditEvent, Environment, WorkerOutage
from webhooks.bulk_outcomes import Outcomes, covered
from webhooks.health import last_failure
from webhooks.models import BulkResend, Delivery, ReceiverAuth, Webhook

from .models import Kind

# Share of the auto-disable window at which a failing webhook's people are warned, highest first.
DISABLE_WARNINGS = (90, 50)
EXPIRY_WARNINGS_DAYS = (3, 14)


@dataclass(frozen=True)
class Occasion:
    kind: str
    key: str
    environment: Environment | None  # None: the portal as a whole; only Admins are told
    subject: str
    body: str
    link: str


def pending(now: datetime.datetime | None = None) -> Iterator[Occasion]:
    """Every occasion that holds at `now`, of every kind."""
    now = now or timezone.now()
    yield from failing_webhooks(now)
    yield from disabled_webhooks(now)
    yield from expiring_credentials(now)
    yield from expiring_client_certificates(now)
    yield from finished_recoveries(now)
    yield from worker_returns(now)


def _lookback(now: datetime.datetime) -> datetime.datetime:
    # Occasions older than this are history, not news: a fresh install is not flooded with them.
    return now - datetime.timedelta(days=settings.NOTIFICATIONS_LOOKBACK_DAYS)


def _spell(webhook: Webhook) -> str:
    # A failing spell is named by when it began: the next spell is a new occasion.
    return f"webhook-{webhook.pk}-since-{webhook.failing_since.timestamp():.6f}"


def _duration(delta: datetime.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if delta.total_seconds() < 90:
        seconds = round(delta.total_seconds())
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if hours < 1:
        minutes = round(delta.total_seconds() / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    if hours < 48:
        return f"{hours:.0f} hour{'s' if round(hours) != 1 else ''}"
    return f"{hours / 24:.1f} days"


def failing_webhooks(now: datetime.datetime) -> Iterator[Occasion]:
    """Webhooks failing for longer than NOTIFY_FAILING_AFTER_MINUTES, and those nearing auto-disable."""
    threshold = datetime.timedelta(minutes=settings.NOTIFY_FAILING_AFTER_MINUTES)
    window = datetime.timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS)
    webhooks = Webhook.objects.in_condition("failing").filter(failing_since__lte=now - threshold)
    for webhook in webhooks.select_related("environment"):
        environment = webhook.environment
        failed_for = now - webhook.failing_since
        link = reverse("webhook_detail", args=[environment.slug, webhook.pk])
        attempt = last_failure(webhook)
        error = f"The last attempt got: {attempt.outcome}." if attempt else ""
        common = (
            f"Every attempt to deliver to webhook “{webhook.name}” in {environment.name} has failed for "
            f"{_duration(failed_for)} (since {webhook.failing_since:%Y-%m-%d %H:%M} UTC). {error}"
        ).strip()
        yield Occasion(
            Kind.WEBHOOK_FAILING,
            _spell(webhook),
            environment,
            f"Webhook “{webhook.name}” is failing ({environment.name})",
            f"{common}\nDeliveries wait and are retried. Fix the receiver, then recover the failed ones from the "
            "webhook's page.",
            link,
        )
        for share in DISABLE_WARNINGS:
            if failed_for >= window * share / 100:
                left = max(webhook.disables_at - now, datetime.timedelta(0))
                yield Occasion(
                    Kind.WEBHOOK_DISABLING,
                    f"{_spell(webhook)}-{share}",
                    environment,
                    f"Webhook “{webhook.name}” will be disabled in {_duration(left)} ({environment.name})",
                    f"{common}\nIt has used {share} % of the {settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS:g} days a "
                    f"webhook may fail before it is disabled: unless a delivery succeeds, it is disabled at "
                    f"{webhook.disables_at:%Y-%m-%d %H:%M} UTC and stops sending.",
                    link,
                )
                break


def disabled_webhooks(now: datetime.datetime) -> Iterator[Occasion]:
    """Webhooks disabled (by the sending path or by a person) within the lookback, still disabled."""
    disabled = {
        str(webhook.pk): webhook for webhook in Webhook.objects.in_condition("disabled").select_related("environment")
    }
    events = AuditEvent.objects.filter(
        action="webhook.disabled",
        target_type=Webhook._meta.label_lower,
        target_id__in=list(disabled),
        occurred_at__gte=_lookback(now),
    )
    for event in events.order_by("occurred_at"):
        webhook = disabled[event.target_id]
        environment = webhook.environment
        # A reason may end a sentence of its own: "…these events." must not become "…these events..".
        reason = (webhook.disabled_reason or "no reason given").rstrip(".")
        yield Occasion(
            Kind.WEBHOOK_DISABLED,
            f"webhook-{webhook.pk}-disabled-{event.pk}",
            environment,
            f"Webhook “{webhook.name}” was disabled ({environment.name})",
            f"Webhook “{webhook.name}” in {environment.name} was disabled at {event.occurred_at:%Y-%m-%d %H:%M} UTC "
            f"by {event.actor_label}: {reason}.\nNew events wait as deliveries and nothing is sent until it is "
            "enabled again: fix the receiver, then enable it from the webhook's page.",
            reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#resume",
        )


def expiring_credentials(now: datetime.datetime) -> Iterator[Occasion]:
    """Credentials expiring within 14 days (told at 14 and at 3 days), and those that expired lately."""
    horizon = now + datetime.timedelta(days=max(EXPIRY_WARNINGS_DAYS))
    credentials = Credential.objects.filter(
        invalidated_at__isnull=True, expires_at__gt=_lookback(now), expires_at__lte=horizon
    ).select_related("client__environment")
    for credential in credentials:
        client = credential.client
        environment = client.environment
        expiry = f"{credential.expires_at.timestamp():.0f}"
        link = reverse("client_rotation", args=[environment.slug, client.client_id])
        named = f"credential “{credential.name}” of client “{client.name}”"
        if credential.expires_at <= now:
            yield Occasion(
                Kind.CREDENTIAL_EXPIRY,
                f"credential-{credential.pk}-{expiry}-expired",
                environment,
                f"Credential “{credential.name}” of “{client.name}” has expired ({environment.name})",
                f"The {named} in {environment.name} expired at {credential.expires_at:%Y-%m-%d %H:%M} UTC: "
                "it no longer obtains tokens. If the client still runs, give it a new credential through the "
                "guided rotation.",
                link,
            )
            continue
        days = next(days for days in EXPIRY_WARNINGS_DAYS if credential.expires_at <= now + datetime.timedelta(days))
        yield Occasion(
            Kind.CREDENTIAL_EXPIRY,
            f"credential-{credential.pk}-{expiry}-{days}d",
            environment,
            f"Credential “{credential.name}” of “{client.name}” expires within {days} days ({environment.name})",
            f"The {named} in {environment.name} expires at {credential.expires_at:%Y-%m-%d %H:%M} UTC. Rotate it "
            "before then so the client keeps working: the guided rotation creates the new credential and checks "
            "the client has moved to it.",
            link,
        )


def expiring_client_certificates(now: datetime.datetime) -> Iterator[Occasion]:
    """Webhooks' TLS client certificates expiring within 14 days (told at 14 and at 3 days), and those that
    expired lately (nothing is sent with an expired one): told like credentials."""
    horizon = now + datetime.timedelta(days=max(EXPIRY_WARNINGS_DAYS))
    auths = ReceiverAuth.objects.filter(cert_not_after__gt=_lookback(now), cert_not_after__lte=horizon).exclude(
        client_cert=""
    )
    for auth in auths.select_related("webhook__environment"):
        webhook, expires = auth.webhook, auth.cert_not_after
        environment = webhook.environment
        assert expires is not None  # filtered on
        key = f"client-cert-{auth.pk}-{expires.timestamp():.0f}"
        link = reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#receiver-auth"
        named = f"TLS client certificate of webhook “{webhook.name}”"
        if expires <= now:
            yield Occasion(
                Kind.CREDENTIAL_EXPIRY, f"{key}-expired", environment,
                f"The {named} has expired ({environment.name})",
                f"The {named} in {environment.name} expired at {expires:%Y-%m-%d %H:%M} UTC: nothing is sent to "
                "its receiver until a renewed certificate is uploaded on the webhook's page.",
                link,
            )  # fmt: skip
            continue
        days = next(days for days in EXPIRY_WARNINGS_DAYS if expires <= now + datetime.timedelta(days))
        yield Occasion(
            Kind.CREDENTIAL_EXPIRY, f"{key}-{days}d", environment,
            f"The {named} expires within {days} days ({environment.name})",
            f"The {named} in {environment.name} ({auth.cert_subject}) expires at {expires:%Y-%m-%d %H:%M} UTC. "
            "Upload a renewed certificate before then (the receiver must trust its issuer).",
            link,
        )  # fmt: skip


def finished_recoveries(now: datetime.datetime) -> Iterator[Occasion]:
    """Bulk re-sends that finished within the lookback, told by what became of their deliveries."""
    jobs = BulkResend.objects.filter(finished_at__gte=_lookback(now)).select_related("webhook__environment")
    for job in jobs:
        webhook = job.webhook
        environment = webhook.environment
        outcomes = Outcomes.of(job)
        after = ""
        if outcomes.failed_again:
            after = (
                " Those that failed again keep their place in the retry schedule; the delivery history shows "
                "each one's last error."
            )
        yield Occasion(
            Kind.RECOVERY_FINISHED,
            f"recovery-{job.pk}",
            environment,
            f"Recovery of webhook “{webhook.name}” finished: {outcomes.headline()} ({environment.name})",
            f"The re-send of {covered(job.total)} of webhook “{webhook.name}” in {environment.name}, started by "
            f"{job.created_by or 'the system'}, finished at {job.finished_at:%Y-%m-%d %H:%M} UTC: "
            f"{outcomes.summary()}.{after}",
            reverse("webhook_recovery", args=[environment.slug, webhook.pk, job.pk]),
        )


def worker_returns(now: datetime.datetime) -> Iterator[Occasion]:
    """A background worker reported in again after none had for WORKER_SILENT_AFTER_SECONDS: tell Admins."""
    for outage in WorkerOutage.objects.filter(ended_at__gte=_lookback(now)):
        if outage.waited is None:
            outage.waited = Delivery.objects.filter(
                created_at__gte=outage.started_at, created_at__lte=outage.ended_at
            ).count()
            outage.save(update_fields=["waited"])
        waited = f"{outage.waited} deliver{'y' if outage.waited == 1 else 'ies'}"
        yield Occasion(
            Kind.WORKER_BACK,
            f"worker-outage-{outage.pk}",
            None,
            f"The background worker is back after {_duration(outage.duration)}",
            f"No background worker ran from {outage.started_at:%Y-%m-%d %H:%M:%S} to {outage.ended_at:%H:%M:%S} UTC "
            f"({_duration(outage.duration)}): nothing was sent meanwhile. The {waited} made in that time, and "
            "any retries that fell due, waited in the database and go out now. If it stopped by itself, the "
            "worker's log says why.",
            reverse("notifications"),
        )
