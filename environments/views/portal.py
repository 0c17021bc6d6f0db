"""The portal shell: home, environment switching, Overview and the per-environment sections."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse

from ..access import visible_environments
from ..preferences import landing_environment

# Sections the environment switcher can land on; the same page in the new environment.
SECTIONS = ("overview", "credentials", "webhooks", "deliveries")


@login_required
def home(request):
    environment = landing_environment(request.user)
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
