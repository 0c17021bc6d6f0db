"""A webhook's receiver authentication page: OAuth 2.0 client credentials, a TLS client certificate, CAs."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse

from environments.views.decorators import environment_page

from ..receiver_auth import (
    ReceiverAuthInvalid,
    new_client_csr,
    receiver_auth_of,
    remove_client_certificate,
    rotate_client_key,
    set_ca_bundle,
    set_client_certificate,
    set_receiver_auth,
)
from ..receiver_auth_form import ReceiverAuthForm, initial_of
from .portal import webhook_of

# The services' error keys (named like the command's flags) and the form's fields.
_FORM_FIELDS = {
    "receiver_auth": "method",
    "oauth_client_id": "client_id",
    "oauth_client_secret": "client_secret",
    "oauth_client_auth": "secret_method",
    "oauth_scope": "scope",
    "oauth_resource": "resource",
    "oauth_key_algorithm": "key_algorithm",
    "client_csr": "new_csr_common_name",
}


@environment_page(manage=True)
def webhook_receiver_auth(request, environment, webhook_id):
    """Show and change how the webhook proves itself to its receiver (every change audited, no secret shown)."""
    webhook = webhook_of(environment, webhook_id)
    stored = receiver_auth_of(webhook)
    form = ReceiverAuthForm(request.POST or None, request.FILES or None, initial=initial_of(stored))
    if request.method == "POST" and form.is_valid():
        try:
            _apply(webhook, form, request.actor)
        except ReceiverAuthInvalid as error:
            for field, message in error.errors.items():
                field = _FORM_FIELDS.get(field, field)
                form.add_error(field if field in form.fields else None, message)
        except forms.ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Receiver authentication saved. Send a test to prove the whole chain.")
            return redirect(reverse("webhook_detail", args=[environment.slug, webhook.pk]) + "#receiver-auth")
    return render(
        request,
        "webhooks/receiver_auth.html",
        {"section": "webhooks", "webhook": webhook, "form": form, "receiver_auth": stored},
    )


def _apply(webhook, form: ReceiverAuthForm, actor) -> None:
    data = form.cleaned_data
    cert, key, bundle = form.pem("client_cert"), form.pem("client_key"), form.pem("ca_bundle")
    if key and not cert:
        raise ReceiverAuthInvalid({"client_key": "upload the certificate with its key"})
    with transaction.atomic():
        set_receiver_auth(webhook, form.fields_value(), actor)
        if data["rotate_key"]:
            rotate_client_key(webhook, actor)
        if data["new_csr_common_name"]:
            new_client_csr(webhook, data["new_csr_common_name"], actor)
        if cert:
            set_client_certificate(webhook, cert, key, actor)
        elif data["remove_client_cert"]:
            remove_client_certificate(webhook, actor)
        if bundle or data["remove_ca_bundle"]:
            set_ca_bundle(webhook, bundle, actor)
