"""Erasing payloads (one delivery, a webhook's range, the environment's range) and the payload retention."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.utils.translation import ngettext

from environments.views.decorators import environment_page

from .. import erasure
from ..forms import EraseForm, RetentionForm
from .portal import sentence


@environment_page(manage=True)
def erase_payloads(request, environment):
    """GET: what a scope holds, named and counted, to confirm; POST: erase exactly that (irreversible, audited)."""
    if request.method == "POST" and request.POST.get("action") == "retention":
        return _set_retention(request, environment)
    form = EraseForm(request.POST if request.method == "POST" else request.GET, environment=environment)
    scope = form.scope() if form.is_valid() else None
    problem = scope.problem() if scope else None
    notice = None
    if request.method == "POST" and scope and not problem:
        expected = form.cleaned_data["expected"]
        if expected is None:
            # Only a confirmation that showed a count may erase: a bare POST names no count to hold to.
            notice = "Nothing was erased: count the payloads first, then confirm."
        else:
            try:
                count = erasure.erase_payloads(scope, expected=expected, actor=request.actor)
            except erasure.ScopeChanged as error:
                notice = str(error)
            else:
                what = f"{count} deliver{'y' if count == 1 else 'ies'}: {scope.sentence()}"
                messages.success(request, f"Erased the payloads of {what}.")
                if scope.delivery is not None:
                    return redirect("delivery_detail", environment.slug, scope.delivery.pk)
                return redirect("deliveries", environment.slug)
    return render(
        request,
        "webhooks/erase.html",
        {
            "section": "deliveries",
            "title": "Erase payloads",
            "form": form,
            "scope": scope,
            "problem": problem,
            "notice": notice,
            "count": scope.deliveries().count() if scope and not problem else 0,
            "waiting": scope.waiting() if scope and not problem else 0,
            "query": urlencode({key: value for key, value in request.GET.items() if value}),
            "retention_form": RetentionForm(initial={"days": environment.payload_retention_days}),
        },
        status=400 if request.method == "POST" else 200,
    )


def _set_retention(request, environment):
    form = RetentionForm(request.POST)
    if form.is_valid():
        try:
            erasure.set_payload_retention(environment, form.cleaned_data["days"], actor=request.actor)
        except ValueError as error:
            messages.error(request, f"Nothing was changed: {sentence(error)}")
        else:
            days = environment.payload_retention_days
            kept = (
                ngettext("%(days)d day", "%(days)d days", days) % {"days": days}
                if days
                else "as long as the deliveries"
            )
            messages.success(request, f"Payloads in {environment.name} are now kept {kept}.")
    else:
        messages.error(request, "Nothing was changed: the retention is a whole number of days from 1 to 36,500.")
    return redirect("erase_payloads", environment.slug)
