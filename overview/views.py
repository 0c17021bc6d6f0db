"""The Overview: one environment at a glance. It composes the apps (schema, credentials' token health,
workers), so it lives outside them: none of them imports it."""

from datetime import timedelta

from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone

from credentials.models import AccessToken, AuthFailure
from environments.access import ROLE_LABELS, can_read_audit
from environments.models import AuditEvent
from environments.views.decorators import environment_page
from environments.views.portal import worker_status


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
            "workers": worker_status(),
            "event_count": environment.events.count(),
            "access": _access_health(environment),
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
