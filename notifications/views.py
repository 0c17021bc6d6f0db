"""The Notifications page: a person's notices, newest first, and what they choose to be told."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from . import inbox
from .models import Kind


@login_required
def notification_list(request):
    page = Paginator(inbox.notices_of(request.user), settings.NOTIFICATIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    muted = inbox.muted_kinds(request.user)
    kinds = [{"value": value, "label": label, "told": value not in muted} for value, label in Kind.choices]
    return render(
        request,
        "notifications/list.html",
        {"page": page, "kinds": kinds, "title": "Notifications", "section": "notifications"},
    )


@login_required
def notification_open(request, notice_id: int):
    """Follow a notice to its page, marking it read on the way."""
    notice = get_object_or_404(inbox.notices_of(request.user), pk=notice_id)
    inbox.mark_read(request.user, [notice.pk])
    if not url_has_allowed_host_and_scheme(notice.link, allowed_hosts=None):
        return redirect("notifications")
    return redirect(notice.link)


@login_required
@require_POST
def notification_mark_all_read(request):
    count = inbox.mark_read(request.user)
    messages.success(request, f"Marked {count} notification{'s' if count != 1 else ''} as read.")
    return redirect("notifications")


@login_required
@require_POST
def notification_settings(request):
    told = set(request.POST.getlist("told"))
    unknown = told - set(Kind.values)
    if unknown:
        messages.error(request, "Nothing was changed: the form named a kind of notification that does not exist.")
        return redirect("notifications")
    inbox.set_muted(request.user, set(Kind.values) - told)
    messages.success(request, "Saved: you are told about the kinds that are ticked, by e-mail and here.")
    return redirect(reverse("notifications") + "#settings")
