"""Your settings: the time zone every time is shown in."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from ..preferences import preference_of, set_time_zone, time_zone_names


@login_required
def account(request):
    if request.method == "POST":
        try:
            set_time_zone(request.user, request.POST.get("time_zone", "").strip())
        except ValueError as error:
            messages.error(request, f"Nothing was changed: {error}")
        else:
            messages.success(request, "Saved: times are now shown in your time zone, labelled with it.")
        return redirect("account")
    return render(
        request,
        "environments/account.html",
        {
            "title": "Your settings",
            "section": "account",
            "time_zone": preference_of(request.user).time_zone,
            "time_zones": time_zone_names(),
        },
    )
