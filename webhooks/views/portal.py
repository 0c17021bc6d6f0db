"""The Webhooks pages: list, create, edit, detail with keys, state, test delivery and bulk re-send."""

import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from credentials import secrets as credential_secrets
from environments.access import is_admin
from environments.views.decorators import environment_page
from environments.workers import silence
from portal.converters import row_id

from .. import bulk, event_schemas, lines, manual, manual_sends, numbering, self_test, verification
from ..bulk_outcomes import Outcomes, covered
from ..configure import (
    WebhookError,
    WebhookInvalid,
    create_webhook,
    delete_webhook,
    fields_of,
    old_keys_signing,
    rotate_signing_secret,
    signing_keys_of,
    signing_secrets_in_use,
    stop_old_keys,
    update_webhook,
)
from ..delivery import bodies
from ..forms import BulkResendForm, ResumeForm, RotateSecretForm, WebhookForm, initial_of
from ..health import health as health_of
from ..health import last_failure
from ..lifecycle import pause_webhook, resume_webhook, waive_verification
from ..models import BulkResend, Delivery, ManualSend, Webhook, WebhookQuerySet
from ..receiver_auth import receiver_auth_context

# Where a new signing secret waits, encrypted, for the one page view that shows it.
_SHOW_ONCE_KEY = "webhooks.show_once"
COLUMNS = [("name", "Name"), ("url", "URL"), ("last_triggered", "Last triggered"), ("state", "State")]
_SORTS = {"name": "name", "url": "url", "last_triggered": "last_triggered_at", "state": "condition_rank"}
# Sorting by state puts what needs attention first: failing, disabled, paused, then healthy.
CONDITIONS = WebhookQuerySet.CONDITIONS


def webhook_of(environment, webhook_id: int) -> Webhook:
    return get_object_or_404(Webhook.objects.select_related("environment"), pk=webhook_id, environment=environment)


@environment_page
def webhook_list(request, environment):
    search = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "name")
    field = _SORTS.get(sort.lstrip("-"), "name")
    order = F(field).desc(nulls_last=True) if sort.startswith("-") else F(field).asc(nulls_first=True)
    webhooks = environment.webhooks.with_condition_rank()
    ranks = dict(webhooks.order_by().values_list("condition_rank").annotate(n=Count("id")))
    counts = {name: ranks.get(rank, 0) for rank, name in enumerate(CONDITIONS)}
    condition = request.GET.get("state", "")
    if condition in CONDITIONS:
        webhooks = webhooks.in_condition(condition)
    webhooks = webhooks.order_by(order, "name")
    if search:
        webhooks = webhooks.filter(Q(name__icontains=search) | Q(url__icontains=search))
    return render(
        request,
        "webhooks/list.html",
        {
            "section": "webhooks",
            "webhooks": webhooks,
            "search": search,
            "sort": sort,
            "columns": COLUMNS,
            "condition": condition if condition in CONDITIONS else "",
            "condition_counts": [(name, counts[name]) for name in CONDITIONS],
            # With none at all, a search box and state filters only stand in the way of the first one.
            "has_webhooks": environment.webhooks.exists(),
            "extra_query": f"&state={condition}" if condition in CONDITIONS else "",
            # The event catalog: each event type's example beside the JSON Schema of its body.
            "examples": [(e.event_type, e.example, e.schema) for e in event_schemas.catalog(environment)],
            "catalog_version": event_schemas.catalog_version(environment),
        },
    )


@environment_page(manage=True)
def webhook_new(request, environment):
    form = WebhookForm(request.POST or None, environment=environment)
    if request.method == "POST" and form.is_valid():
        try:
            webhook, secret = create_webhook(environment, form.to_fields(), actor=request.actor)
        except WebhookInvalid as error:
            form.show(error)
        else:
            messages.success(request, f"Webhook “{webhook.name}” created.")
            if webhook.security_method == Webhook.SecurityMethod.SIGNING_SECRET:
                request.session[_SHOW_ONCE_KEY] = {str(webhook.pk): credential_secrets.encrypt(secret)}
                return redirect("webhook_secret", environment.slug, webhook.pk)
            return redirect("webhook_detail", environment.slug, webhook.pk)
    return _form_page(request, form, "New webhook")


@environment_page(manage=True)
def webhook_edit(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    form = WebhookForm(request.POST or None, environment=environment, initial=initial_of(fields_of(webhook)))
    if request.method == "POST" and form.is_valid():
        try:
            update_webhook(webhook, form.to_fields(), actor=request.actor)
        except WebhookInvalid as error:
            form.show(error)
        else:
            messages.success(request, f"Webhook “{webhook.name}” saved.")
            return redirect("webhook_detail", environment.slug, webhook.pk)
    return _form_page(request, form, f"Edit webhook “{webhook.name}”", webhook)


def _form_page(request, form, title, webhook=None):
    return render(
        request, "webhooks/form.html", {"section": "webhooks", "form": form, "title": title, "webhook": webhook}
    )


@environment_page
def webhook_detail(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    return _detail_page(request, webhook)


def _shown(request, webhook, kind: str, parameter: str):
    return manual_sends.shown(webhook, kind, row_id(request.GET.get(parameter, "")))


def _verification_shown(request, webhook):
    """The verification the page was sent to show; else, while the webhook waits for one, the one under way."""
    shown = _shown(request, webhook, ManualSend.Kind.VERIFICATION, "verification")
    if shown is not None and shown.is_finished:
        # The webhook was read before the send: a verification that finished in between changed its state.
        webhook.refresh_from_db()
    if shown is None and webhook.state == Webhook.State.UNVERIFIED:
        latest = manual_sends.latest(webhook, ManualSend.Kind.VERIFICATION)
        shown = latest if latest is not None and not latest.is_finished else None
    return shown


def _detail_page(request, webhook):
    # First: it may read the webhook again (a verification that finished meanwhile changed its state).
    verification = _verification_shown(request, webhook)
    now = timezone.now()
    self_test_send = _shown(request, webhook, ManualSend.Kind.SELF_TEST, "self_test")
    [health] = health_of(webhook=webhook)
    failure = last_failure(webhook) if webhook.condition in ("failing", "disabled") else None
    held = lines.held_lines(webhook, limit=lines.HELD_LINES_SHOWN + 1)
    return render(
        request,
        "webhooks/detail.html",
        {
            "section": "webhooks",
            "webhook": webhook,
            "health": health,
            "secrets": signing_keys_of(webhook),
            "secrets_signing": signing_secrets_in_use(webhook, now),
            "old_keys_signing": old_keys_signing(webhook, now),
            "signing_credentials": [
                (credential, credential.state_at(now)) for credential in webhook.signing_credentials.all()
            ],
            "now": now,
            "test_send": _shown(request, webhook, ManualSend.Kind.TEST, "test"),
            "self_test_send": self_test_send,
            "self_test": self_test.result_of(self_test_send) if self_test_send else None,
            "verification": verification,
            "test_types": manual.test_types(webhook),
            # Built by the code that builds real bodies, with this webhook's format and chosen fields.
            "example_payloads": [
                (name, bodies.preview(webhook, name), event_schemas.event_schema(webhook.environment, name, webhook))
                for name in webhook.event_types
            ],
            "last_failure": failure,
            "sending_policy": lines.sending_policy(webhook),
            # A receiver's 429 Retry-After: slowed down, which is not failing.
            "slowed_until": webhook.slowed_until if webhook.slowed_until and webhook.slowed_until > now else None,
            # One more than shown, to say whether there are more.
            "numbered": numbering.progress(webhook.pk),
            "held_lines": held[: lines.HELD_LINES_SHOWN],
            "more_held": len(held) > lines.HELD_LINES_SHOWN,
            "rotate_form": RotateSecretForm(),
            "resume_form": ResumeForm(),
            "bulk_form": BulkResendForm(webhook=webhook),
            "bulk_jobs": [(job, Outcomes.of(job)) for job in webhook.bulk_resends.all()[:5]],
            "bulk_running": webhook.bulk_resends.exclude(state=BulkResend.State.DONE).exists(),
            **receiver_auth_context(webhook),
        },
    )


@never_cache
@environment_page(manage=True)
def webhook_secret(request, environment, webhook_id):
    """Show a new signing secret exactly once: the session copy is removed as it is read."""
    webhook = webhook_of(environment, webhook_id)
    pending = request.session.pop(_SHOW_ONCE_KEY, {})
    encrypted = pending.get(str(webhook.pk))
    secret = credential_secrets.decrypt(encrypted) if encrypted else None
    return render(request, "webhooks/secret.html", {"section": "webhooks", "webhook": webhook, "secret": secret})


@require_POST
@environment_page(manage=True)
def webhook_test(request, environment, webhook_id):
    """Ask a worker to send a test; the page shows its result when it is in (post/redirect/get: a reload sends
    nothing)."""
    webhook = webhook_of(environment, webhook_id)
    try:
        event_type = request.POST.get("event_type") or manual.TEST_EVENT_TYPE
        send = manual.send_test(webhook, event_type=event_type, actor=request.actor)
    except manual.ResendRefused as error:
        messages.error(request, f"Nothing was sent. {sentence(error)}")
        return redirect(reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#testing")
    return _show(environment, webhook, "test", send, "#testing")


@require_POST
@environment_page(manage=True)
def webhook_self_test(request, environment, webhook_id):
    """Ask a worker to run the signature self-test; the page shows its verdict when it is in."""
    webhook = webhook_of(environment, webhook_id)
    return _show(environment, webhook, "self_test", self_test.run(webhook, actor=request.actor), "#testing")


@require_POST
@environment_page(manage=True)
def webhook_verify(request, environment, webhook_id):
    """Ask a worker to send the verification challenge now; the page shows what came back when it is in."""
    webhook = webhook_of(environment, webhook_id)
    return _show(environment, webhook, "verification", verification.verify(webhook, actor=request.actor), "#health")


def _show(environment, webhook, parameter: str, send, anchor: str):
    page = reverse("webhook_detail", args=[environment.slug, webhook.pk])
    return redirect(f"{page}?{urlencode({parameter: send.pk})}{anchor}")


@require_POST
@environment_page(manage=True)
def webhook_waive_verification(request, environment, webhook_id):
    """An Admin lets an unverified webhook send without proof, with a reason (audited)."""
    webhook = webhook_of(environment, webhook_id)
    if not is_admin(request.user):
        raise PermissionDenied("Only an Admin may waive verification.")
    try:
        count = waive_verification(webhook, request.POST.get("reason", ""), actor=request.actor)
    except WebhookError as error:
        messages.error(request, f"Nothing was changed: {sentence(error)}")
    else:
        went = ngettext("%(count)d waiting delivery goes", "%(count)d waiting deliveries go", count) % {"count": count}
        messages.success(request, f"Verification waived: “{webhook.name}” is active; {went}.")
    return redirect(reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#health")


@require_POST
@environment_page(manage=True)
def webhook_pause(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    _act(request, lambda: pause_webhook(webhook, actor=request.actor), f"“{webhook.name}” is paused.")
    return redirect("webhook_detail", environment.slug, webhook.pk)


@require_POST
@environment_page(manage=True)
def webhook_retry_now(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    try:
        count = manual.retry_now(webhook, actor=request.actor)
    except manual.ResendRefused as error:
        messages.error(request, sentence(error))
    else:
        waiting = ngettext("%(count)d waiting delivery", "%(count)d waiting deliveries", count) % {"count": count}
        messages.success(request, f"Sending {waiting} of “{webhook.name}” now, oldest first.")
    return redirect("webhook_detail", environment.slug, webhook.pk)


@require_POST
@environment_page(manage=True)
def webhook_resume(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    form = ResumeForm(request.POST)
    discard = form.is_valid() and form.cleaned_data["waiting"] == "discard"
    if discard and request.POST.get("confirm") != "discard":
        # Discarding cannot be undone: say how many deliveries will never be sent before doing it.
        waiting = webhook.deliveries.filter(status__in=Delivery.WAITING, is_test=False).count()
        return render(
            request,
            "webhooks/discard.html",
            {"section": "webhooks", "webhook": webhook, "waiting": waiting, "title": _discard_title(waiting)},
        )
    try:
        count = resume_webhook(webhook, discard_waiting=discard, actor=request.actor)
    except WebhookError as error:
        messages.error(request, str(error))
    else:
        done = "discarded" if discard else "sent, oldest first"
        waiting = ngettext("%(count)d waiting delivery", "%(count)d waiting deliveries", count) % {"count": count}
        messages.success(request, f"“{webhook.name}” is active again; {waiting} {done}.")
    return redirect("webhook_detail", environment.slug, webhook.pk)


def _discard_title(waiting: int) -> str:
    return ngettext("Discard %(count)d delivery?", "Discard %(count)d deliveries?", waiting) % {"count": waiting}


@require_POST
@environment_page(manage=True)
def webhook_rotate(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The grace period must be a whole number of hours from 0 to 168.")
        return redirect("webhook_detail", environment.slug, webhook.pk)
    secret = rotate_signing_secret(
        webhook, grace=datetime.timedelta(hours=form.cleaned_data["grace_hours"]), actor=request.actor
    )
    if webhook.security_method == Webhook.SecurityMethod.ED25519:
        # A public key is no secret: it is on the page and in the JWKS from now on.
        messages.success(request, f"New Ed25519 key {secret}: give receivers this public key (or the JWKS).")
        return redirect(reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#signing")
    request.session[_SHOW_ONCE_KEY] = {str(webhook.pk): credential_secrets.encrypt(secret)}
    return redirect("webhook_secret", environment.slug, webhook.pk)


@environment_page(manage=True)
def webhook_stop_old_keys(request, environment, webhook_id):
    """End a rotation's grace period now (a leak): say what stops and who it affects, then do it on POST."""
    webhook = webhook_of(environment, webhook_id)
    if request.method == "POST":
        try:
            stopped = stop_old_keys(webhook, actor=request.actor)
        except WebhookError as error:
            messages.error(request, sentence(error))
        else:
            count = len(stopped)
            messages.success(
                request,
                f"{count} old {webhook.key_noun}{'s' if count != 1 else ''} stopped signing: "
                f"requests to “{webhook.name}” now carry only the current one's signature.",
            )
        return redirect(reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#signing")
    return render(
        request,
        "webhooks/stop_old_keys.html",
        {
            "section": "webhooks",
            "webhook": webhook,
            "old_keys": old_keys_signing(webhook),
            "noun": webhook.key_noun,
            "title": f"Stop signing with the old {webhook.key_noun} now?",
        },
    )


@environment_page(manage=True)
def webhook_bulk_resend(request, environment, webhook_id):
    """Recover: say how many deliveries a range holds (or why none), then re-send them on confirmation."""
    webhook = webhook_of(environment, webhook_id)
    form = BulkResendForm(request.POST if request.method == "POST" else request.GET, webhook=webhook)
    if not form.is_valid():
        problems = "; ".join(f"{form.fields[name].label}: {errors[0]}" for name, errors in form.errors.items())
        messages.error(request, f"Nothing was re-sent. {problems}")
        return redirect("webhook_detail", environment.slug, webhook.pk)
    selection = form.selection(webhook)
    if request.method == "POST":
        try:
            job = bulk.start_bulk_resend(selection, actor=request.actor)
        except ValueError as error:
            messages.error(request, f"Nothing was re-sent. {sentence(error)}")
        else:
            if (quiet := silence()) and quiet.stopped:
                messages.warning(
                    request,
                    f"Recovery queued: {covered(job.total)} of “{webhook.name}”, but no background worker is "
                    "running: nothing is sent until one runs again.",
                )
            else:
                messages.success(request, f"Recovery started: {covered(job.total)} of “{webhook.name}”, oldest first.")
            return redirect("webhook_recovery", environment.slug, webhook.pk, job.pk)
        return redirect("webhook_detail", environment.slug, webhook.pk)
    return render(
        request,
        "webhooks/recover.html",
        {
            "section": "webhooks",
            "webhook": webhook,
            "form": form,
            "selection": selection,
            "what": bulk.STATUS_CHOICES[selection.status],
            "preview": bulk.preview(selection),
        },
    )


@environment_page(manage=True)
def webhook_delete(request, environment, webhook_id):
    webhook = webhook_of(environment, webhook_id)
    if request.method == "POST":
        delete_webhook(webhook, actor=request.actor)
        messages.success(request, f"Webhook “{webhook.name}” deleted.")
        return redirect("webhooks", environment.slug)
    return render(
        request,
        "webhooks/delete.html",
        {"section": "webhooks", "webhook": webhook, "deliveries": webhook.deliveries.count()},
    )


def _act(request, action, success: str) -> None:
    try:
        action()
    except WebhookError as error:
        messages.error(request, sentence(error))
    else:
        messages.success(request, success)


def sentence(error: Exception) -> str:
    """A service's lower-case reason as a sentence for a message."""
    text = str(error)
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"
