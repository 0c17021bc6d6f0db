"""The Overview: one environment at a glance. It composes the apps (schema, credentials' token health,
workers), so it lives outside them: none of them imports it."""

from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from credentials.models import AccessToken, AuthFailure, Credential
from environments.access import ROLE_LABELS, can_read_audit
from environments.models import AuditEvent
from environments.views.decorators import environment_page
from environments.workers import worker_status
from webhooks.health import summaries
from webhooks.rollup import Hour, hour_of, hours_from

from .charts import hour_bars

EXPIRY_HORIZON = timedelta(days=30)


@environment_page
def overview(request, environment):
    counts = dict(environment.records.values_list("data_type").annotate(n=Count("id")).values_list("data_type", "n"))
    data_types = [
        {
            "name": name,
            "label": definition.get("label", name),
            "fields": definition["fields"],
            "records": counts.get(name, 0),
            "event_types": [f"{name}.{action}" for action in ("created", "updated", "deleted")],
        }
        for name, definition in sorted(environment.schema.get("data_types", {}).items())
    ]
    now = timezone.now()
    webhooks = summaries(environment, now)
    for summary in webhooks:
        history = reverse("webhook_history", args=[environment.slug, summary.webhook.pk])
        summary.bars = hour_bars(summary.hours, history_url=history)
        summary.chart_id = f"webhook-{summary.webhook.pk}"
    expiring = list(
        Credential.objects.filter(
            client__environment=environment,
            invalidated_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=now + EXPIRY_HORIZON,
        )
        .select_related("client")
        .order_by("expires_at")
    )
    access_hours = _access_hours(environment, now)
    recent_audit = []
    if can_read_audit(request.user) and request.role != "viewer":
        recent_audit = AuditEvent.objects.filter(environment=environment).select_related("environment")[:10]
    return render(
        request,
        "overview/overview.html",
        {
            "section": "overview",
            "data_types": data_types,
            "role_label": ROLE_LABELS[request.role],
            "recent_audit": recent_audit,
            "workers": worker_status(now),
            "waiting_total": sum(summary.waiting for summary in webhooks),
            # Test sends' events are not changes of the environment's data.
            "event_count": environment.events.filter(is_test=False).count(),
            "access": _access_health(environment),
            "webhook_health": webhooks,
            "attention": [summary for summary in webhooks if summary.next_action],
            "expiring": expiring,
            "access_bars": hour_bars(access_hours, good="tokens issued", bad="failed or throttled"),
            "access_hours": access_hours,
        },
    )


def _access_health(environment) -> dict:
    """Token endpoint health over the last 24 hours: tokens issued, failed authentications, throttled requests."""
    since = timezone.now() - timedelta(hours=24)
    failures = AuthFailure.objects.filter(environment=environment, at__gte=since)
    return {
        "tokens_issued": AccessToken.objects.filter(environment=environment, issued_at__gte=since).count(),
        "failed": failures.exclude(reason=AuthFailure.Reason.THROTTLED).count(),
        "throttled": failures.filter(reason=AuthFailure.Reason.THROTTLED).count(),
        "clients": environment.clients.count(),
    }


def _access_hours(environment, now) -> list[Hour]:
    """Per hour over 24 hours: tokens issued (as `succeeded`) and failed or throttled authentications."""
    first = hour_of(now - timedelta(hours=23))
    issued = _per_hour(AccessToken.objects.filter(environment=environment), "issued_at", first)
    failed = _per_hour(AuthFailure.objects.filter(environment=environment), "at", first)
    return [Hour(hour, issued.get(hour, 0), failed.get(hour, 0)) for hour in hours_from(first, now)]


def _per_hour(rows, field: str, first) -> dict:
    counted = (
        rows.filter(**{f"{field}__gte": first})
        .annotate(hour=TruncHour(field))
        .values("hour")
        .annotate(n=Count("id"))
        .values_list("hour", "n")
    )
    return {hour_of(hour): n for hour, n in counted}
