"""The guided rotation page of a client: seven steps, each with its live state and the next action."""

from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from credentials.models import Client
from credentials.services import CredentialError
from environments.views.decorators import environment_page

from .. import rotation
from ..configure import WebhookError, WebhookInvalid
from .portal import sentence


def _client(environment, client_id: str) -> Client:
    return get_object_or_404(Client, environment=environment, client_id=client_id)


@environment_page
def rotation_page(request, environment, client_id):
    state = rotation.rotation_of(_client(environment, client_id))
    return render(
        request,
        "webhooks/rotation.html",
        {
            "section": "credentials",
            "rotation": state,
            "token_lifetime_minutes": settings.ACCESS_TOKEN_LIFETIME_SECONDS // 60,
        },
    )


@require_POST
@environment_page(manage=True)
def rotation_action(request, environment, client_id, step):
    client = _client(environment, client_id)
    compromised = request.POST.get("compromised") == "yes"
    actions = {
        rotation.ADD_NEW_TO_SIGNING: rotation.add_new_to_signing,
        rotation.RETIRE_OLD: lambda client, **kw: rotation.retire_old(client, compromised=compromised, **kw),
        rotation.REVOKE_OLD_TOKENS: rotation.revoke_old_tokens,
        rotation.CONFIRM_RECEIVERS: rotation.confirm_receivers,
    }
    if step not in actions:
        messages.error(request, "Unknown rotation step.")
        return redirect("client_rotation", environment.slug, client.client_id)
    try:
        changed = actions[step](client, actor=request.actor)
    except (WebhookError, WebhookInvalid, CredentialError) as error:
        messages.error(request, sentence(error))
    else:
        messages.success(request, f"Done: {', '.join(changed) or 'nothing needed changing'}.")
    return redirect("client_rotation", environment.slug, client.client_id)
