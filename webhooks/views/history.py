"""Delivery history pages: per environment and per webhook, a delivery's detail, and re-send."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from environments.views.decorators import environment_page
from people import patient_data
from portal.converters import row_id

from .. import bulk, lines, manual, manual_sends
from ..delivery import bodies
from ..forms import HistoryFilterForm
from ..history import SORTS, HistoryFilterError, HistoryFilters, deliveries_of, page_of
from ..models import Delivery, ManualSend
from .portal import sentence, webhook_of

SEARCH_TAKES = (
    "Search takes an event id (evt_…), a webhook-id (msg_…), an HTTP status such as 500, an error such as "
    "timeout or refused, a webhook's name or part of its URL (a port such as :8443)."
)


@environment_page
def environment_history(request, environment):
    return _history_page(request, environment, webhook=None)


@environment_page
def webhook_history(request, environment, webhook_id):
    return _history_page(request, environment, webhook=webhook_of(environment, webhook_id))


def _history_page(request, environment, webhook):
    form = HistoryFilterForm(request.GET or None, environment=environment)
    sort = request.GET.get("sort", "newest")
    deliveries, next_cursor, problem, resend = [], None, "", None
    if form.is_bound and not form.is_valid():
        problem = "Check the filters: " + "; ".join(
            f"{form.fields[name].label or name}: {errors[0]}" for name, errors in form.errors.items()
        )
    else:
        data = form.cleaned_data if form.is_bound else {}
        filters = HistoryFilters(
            status=data.get("status", ""),
            event_type=data.get("event_type", "").strip(),
            search=data.get("q", ""),
            since=data.get("since"),
            until=data.get("until"),
        )
        try:
            page = page_of(
                deliveries_of(environment=environment, webhook=webhook, filters=filters),
                sort=sort,
                cursor=request.GET.get("after", ""),
                size=settings.DELIVERY_PAGE_SIZE,
            )
            deliveries, next_cursor = page.deliveries, page.next_cursor
        except HistoryFilterError as error:
            problem = sentence(error)
        else:
            resend = _resend_offer(webhook, filters) if webhook is not None and request.role != "viewer" else None
    query = {key: value for key, value in request.GET.items() if key != "after" and value}
    search = form.cleaned_data.get("q", "").strip() if form.is_bound and form.is_valid() else ""
    return render(
        request,
        "webhooks/history.html",
        {
            "section": "deliveries",
            "webhook": webhook,
            "form": form,
            "deliveries": deliveries,
            "problem": problem,
            "sort": sort,
            "sorts": [(key, label) for key, (_, label) in SORTS.items()],
            "next_query": urlencode({**query, "after": next_cursor}) if next_cursor else "",
            "first_query": urlencode(query),
            "is_first_page": not request.GET.get("after"),
            "resend": resend,
            "search": search,
            "search_help": f"No delivery matches “{search}”. {SEARCH_TAKES}",
        },
    )


RESEND_OFFER_COUNT_UP_TO = 1000


def _resend_offer(webhook, filters: HistoryFilters) -> dict | None:
    """ "Re-send these N": the filtered deliveries a bulk re-send can take, when the filters can say which.

    A free-text search cannot be carried into a job, and pending deliveries have not failed yet.
    """
    if filters.search.strip() or filters.status == Delivery.Status.PENDING:
        return None
    status = filters.status if filters.status in bulk.STATUS_CHOICES else bulk.RECOVER
    selection = bulk.Selection(
        webhook, status=status, since=filters.since, until=filters.until, event_type=filters.event_type
    )
    # Only the count of what would go, and only up to a bound: the page is shown for every filter
    # change and must not count a million failures; the confirmation page gives exact counts.
    total = 0 if selection.problem() else selection.targets()[: RESEND_OFFER_COUNT_UP_TO + 1].count()
    if not total:
        return None
    query = {"status": status, "event_type": filters.event_type}
    query.update(
        {name: moment.isoformat() for name, moment in (("since", filters.since), ("until", filters.until)) if moment}
    )
    return {
        "total": f"{RESEND_OFFER_COUNT_UP_TO:,}+" if total > RESEND_OFFER_COUNT_UP_TO else total,
        "what": bulk.STATUS_CHOICES[status],
        "query": urlencode({k: v for k, v in query.items() if v}),
    }


def _delivery(environment, delivery_id: int) -> Delivery:
    return get_object_or_404(
        Delivery.objects.select_related("webhook", "environment"), pk=delivery_id, environment=environment
    )


@environment_page
def delivery_detail(request, environment, delivery_id):
    delivery = _delivery(environment, delivery_id)
    attempts = list(delivery.attempts.order_by("-number"))
    events = list(delivery.events.order_by("id"))
    resend = manual_sends.shown(delivery.webhook, ManualSend.Kind.RESEND, row_id(request.GET.get("resend", "")))
    may_resend = request.role != "viewer" and delivery.status != Delivery.Status.PENDING
    payload_shown = patient_data.may_see_payloads(request.role)
    if payload_shown and not delivery.payload_erased_at:
        patient_data.record_view(request.actor, delivery, environment, "request and response bodies")
    return render(
        request,
        "webhooks/delivery.html",
        {
            "section": "deliveries",
            "delivery": delivery,
            "webhook": delivery.webhook,
            "attempts": attempts,
            "events": events,
            "resend": resend if resend is not None and resend.delivery_id == delivery.pk else None,
            # What a re-send would do to the order of an ordered webhook's line: said before, confirmed by a tick.
            "out_of_order": lines.resend_out_of_order(delivery) if may_resend else "",
            "payload_shown": payload_shown,
            "body": ""
            if delivery.payload_erased_at or not payload_shown
            else delivery.body or bodies.body_of(delivery.pk, delivery.webhook),
        },
    )


@require_POST
@environment_page(manage=True)
def delivery_resend(request, environment, delivery_id):
    """Ask a worker to send the delivery again; its page shows what came back when it is in.

    Of an ordered webhook, a re-send that would reach the receiver out of order goes only when confirmed.
    """
    delivery = _delivery(environment, delivery_id)
    out_of_order = lines.resend_out_of_order(delivery)
    if out_of_order and request.POST.get("out_of_order") != "send":
        messages.error(request, f"Nothing was sent. {out_of_order} Tick “Send it out of order” to send it anyway.")
        return redirect(reverse("delivery_detail", args=[environment.slug, delivery.pk]) + "#resend")
    try:
        send = manual.resend(delivery, actor=request.actor)
    except manual.ResendRefused as error:
        messages.error(request, sentence(error))
        return redirect("delivery_detail", environment.slug, delivery.pk)
    page = reverse("delivery_detail", args=[environment.slug, delivery.pk])
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        # Sent from the history list: stay on it, with a link to where the result will show.
        messages.success(
            request,
            format_html(
                'Re-send of {} asked for. <a href="{}?{}">Watch its result</a>.',
                delivery.message_id,
                page,
                urlencode({"resend": send.pk}),
            ),
        )
        return redirect(back)
    return redirect(f"{page}?{urlencode({'resend': send.pk})}")


@require_POST
@environment_page(manage=True)
def delivery_discard(request, environment, delivery_id):
    """Give up on a waiting delivery (one that holds its line): say what that means, then discard it once confirmed."""
    delivery = _delivery(environment, delivery_id)
    webhook = delivery.webhook
    if request.POST.get("confirm") != "discard":
        return render(
            request,
            "webhooks/discard_delivery.html",
            {
                "section": "webhooks",
                "delivery": delivery,
                "webhook": webhook,
                "record": lines.record_label(delivery),
                "behind": lines.waiting_behind(delivery),
            },
        )
    try:
        lines.discard_delivery(delivery, actor=request.actor)
    except lines.DiscardRefused as error:
        messages.error(request, f"Nothing was discarded. {sentence(error)}")
    else:
        messages.success(
            request,
            f"{delivery.message_id} is discarded: the receiver never gets it. What waited behind it goes now.",
        )
    return redirect(reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#held-lines")
