"""A person's portal settings: their time zone (every time on every page is shown in it, labelled) and
the environment they used last (where they land)."""

from __future__ import annotations

import zoneinfo
from functools import cache

from django.utils import timezone

from .access import visible_environments
from .models import Environment, Preference


@cache
def time_zone_names() -> list[str]:
    """Every IANA zone name this machine knows, sorted; UTC first."""
    names = sorted(zoneinfo.available_timezones() - {"UTC", "localtime"})
    return ["UTC", *names]


def preference_of(user) -> Preference:
    preference, _ = Preference.objects.get_or_create(user=user)
    return preference


def set_time_zone(user, name: str) -> None:
    """Show this person times in `name` (an IANA zone, e.g. Europe/Paris); ValueError when it is not one."""
    if name not in time_zone_names():
        raise ValueError(f"“{name[:64]}” is not a time zone name; choose one from the list (e.g. Europe/Paris).")
    Preference.objects.update_or_create(user=user, defaults={"time_zone": name})


def remember_environment(request, environment: Environment) -> None:
    """Note the environment a person works in, so the portal opens there next time.

    The middleware read the person's preference already: nothing is written unless the environment changed.
    """
    if getattr(request, "last_environment_id", None) == environment.pk:
        return
    Preference.objects.update_or_create(user=request.user, defaults={"last_environment": environment})
    request.last_environment_id = environment.pk


def landing_environment(user) -> Environment | None:
    """Where a person lands: the environment used last, else the first that is not Live (Test before Live)."""
    last = Preference.objects.filter(user=user).values_list("last_environment", flat=True).first()
    return environment_worked_in(list(visible_environments(user)), last)


def environment_worked_in(environments: list[Environment], last_id: int | None) -> Environment | None:
    """Of `environments` (in name order), the one used last, else the first that is not Live (Test before Live).

    Pages outside any environment (Audit log, Configurations, Notifications, Your settings) show this one in the
    switcher and the navigation, so leaving an environment for them does not lose it.
    """
    for environment in environments:
        if environment.pk == last_id:
            return environment
    # A stable sort keeps name order within each group.
    ordered = sorted(environments, key=lambda environment: environment.is_live)
    return ordered[0] if ordered else None


class PreferenceMiddleware:
    """Read the signed-in person's preference once per request: show every time in their zone (Django
    converts aware times as it renders) and keep the environment they used last on the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        name = None
        if request.user.is_authenticated:
            stored = Preference.objects.filter(user=request.user).values_list("time_zone", "last_environment")
            name, request.last_environment_id = stored.first() or (None, None)
        if name:
            timezone.activate(zoneinfo.ZoneInfo(name))
        else:
            timezone.deactivate()
        return self.get_response(request)
