"""The portal shell: home, environment switching, Overview and the per-environment sections."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ..access import ROLE_LABELS, can_read_audit, visible_environments
from ..models import AuditEvent, WorkerHeartbeat
from .decorators import environment_page

# Sections the environment switcher can land on; the same page in the new environment.
SECTIONS = ("overview", "credentials", "webhooks", "deliveries")


@login_required
def home(request):
    environment = visible_environments(request.user).first()
    if environment is None:
        return render(request, "environments/no_environments.html")
    return redirect("overview", slug=environment.slug)


@login_required
def switch_environment(request):
    """Go to the chosen environment, staying on the same section."""
    slug = request.GET.get("environment", "")
    section = request.GET.get("section", "overview")
    if section not in SECTIONS:
        section = "overview"
    if not visible_environments(request.user).filter(slug=slug).exists():
        raise Http404("No such environment.")
    try:
        return redirect(reverse(section, kwargs={"slug": slug}))
    except NoReverseMatch:
        raise Http404("No such section.") from None


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
        "environments/overview.html",
        {
            "section": "overview",
            "data_types": data_types,
            "role_label": ROLE_LABELS[request.role],
            "recent_audit": recent_audit,
            "workers": _worker_status(),
            "event_count": environment.events.count(),
            "access": _access_health(environment),
        },
    )


def _access_health(environment) -> dict:
    """Token endpoint health over the last 24 hours: tokens issued, failed authentications, throttled requests."""
    from credentials.models import AccessToken, AuthFailure

    since = timezone.now() - timedelta(hours=24)
    failures = AuthFailure.objects.filter(environment=environment, at__gte=since)
    return {
        "tokens_issued": AccessToken.objects.filter(environment=environment, issued_at__gte=since).count(),
        "failed": failures.exclude(reason=AuthFailure.Reason.THROTTLED).count(),
        "throttled": failures.filter(reason=AuthFailure.Reason.THROTTLED).count(),
        "clients": environment.clients.count(),
    }


def _worker_status() -> list[dict]:
    from django.conf import settings

    stale_after = timedelta(seconds=settings.WORKER_HEARTBEAT_SECONDS * 3)
    now = timezone.now()
    return [
        {"hostname": beat.hostname, "last_seen": beat.last_seen, "alive": now - beat.last_seen <= stale_after}
        for beat in WorkerHeartbeat.objects.order_by("-last_seen")[:5]
    ]


def healthz(request):
    """Liveness and readiness for load balancers and compose: the database answers."""
    from django.db import connection
    from django.http import JsonResponse

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"; the kind is enough
        return JsonResponse({"status": "unavailable", "database": type(error).__name__}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
