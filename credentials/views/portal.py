"""The Credentials pages: list, clients, credentials shown once, rename, invalidate, revoke, access history."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache

from environments.access import can_manage
from environments.views.decorators import environment_page

from .. import secrets
from ..forms import ClientForm, ClientScopesForm, CredentialForm, InvalidateForm, RenameForm, RevokeTokensForm
from ..models import AccessToken, Client, Credential
from ..services import (
    CredentialError,
    client_deletion_problem,
    create_client,
    create_credential,
    credential_in_use_by,
    credentials_of,
    delete_client,
    disable_client,
    enable_client,
    invalidate_credential,
    rename_client,
    rename_credential,
    revoke_tokens,
    set_client_scopes,
)

# Where a freshly created secret waits, encrypted, for the one page view that shows it.
_SHOW_ONCE_KEY = "credentials.show_once"
COLUMNS = [
    ("client", "Client"),
    ("name", "Name"),
    (None, "client_id"),
    ("created", "Created"),
    (None, "Created by"),
    ("last_used", "Last used"),
    ("expires", "Expires"),
    (None, "State"),
]


@environment_page
def credential_list(request, environment):
    search = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "client")
    credentials = list(credentials_of(environment, search=search, sort=sort))
    now = timezone.now()
    for credential in credentials:
        credential.current_state = credential.state_at(now)
    return render(
        request,
        "credentials/list.html",
        {
            "section": "credentials",
            "credentials": credentials,
            "clients": environment.clients.prefetch_related("credentials"),
            "search": search,
            "sort": sort,
            "columns": COLUMNS,
        },
    )


@environment_page(manage=True)
def client_new(request, environment):
    form = ClientForm(request.POST or None, environment=environment)
    if request.method == "POST" and form.is_valid():
        try:
            client = create_client(
                environment, form.cleaned_data["name"], form.cleaned_data["scopes"], actor=request.actor
            )
        except CredentialError as error:
            form.add_error("name", str(error))
        else:
            messages.success(request, f"Client “{client.name}” created. Now create its first credential.")
            return redirect("credential_new", slug=environment.slug, client_id=client.client_id)
    return render(request, "credentials/form.html", {"form": form, "title": "New client", "section": "credentials"})


@environment_page(manage=True)
def credential_new(request, environment, client_id):
    client = get_object_or_404(Client, environment=environment, client_id=client_id)
    form = CredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credential, secret = create_credential(
                client, form.cleaned_data["name"], expires_at=form.expires_at, actor=request.actor
            )
        except CredentialError as error:
            form.add_error("name", str(error))
        else:
            request.session[_SHOW_ONCE_KEY] = {str(credential.id): secrets.encrypt(secret)}
            then = "?then=rotation" if _in_rotation(request) else ""
            return redirect(reverse("credential_secret", args=[environment.slug, credential.id]) + then)
    return render(
        request,
        "credentials/form.html",
        {
            "form": form,
            "title": f"New credential for {client.name}",
            "section": "credentials",
            "client": client,
            "in_rotation": _in_rotation(request),
        },
    )


def _in_rotation(request) -> bool:
    """The guided rotation sent the person here: take them back to it when they are done."""
    return request.GET.get("then") == "rotation"


@never_cache
@environment_page(manage=True)
def credential_secret(request, environment, credential_id):
    """Show a new secret exactly once: the session copy is removed as it is read."""
    credential = _credential(environment, credential_id)
    pending = request.session.pop(_SHOW_ONCE_KEY, {})
    encrypted = pending.get(str(credential.id))
    secret = secrets.decrypt(encrypted) if encrypted else None
    return render(
        request,
        "credentials/secret.html",
        {"credential": credential, "secret": secret, "section": "credentials", "in_rotation": _in_rotation(request)},
    )


@environment_page(manage=True)
def credential_rename(request, environment, credential_id):
    credential = _credential(environment, credential_id)
    form = RenameForm(request.POST or None, initial={"name": credential.name})
    if request.method == "POST" and form.is_valid():
        try:
            rename_credential(credential, form.cleaned_data["name"], actor=request.actor)
        except CredentialError as error:
            form.add_error("name", str(error))
        else:
            messages.success(request, f"Renamed to “{credential.name}”.")
            return redirect("credentials", slug=environment.slug)
    return render(
        request,
        "credentials/form.html",
        {"form": form, "title": f"Rename {credential.name}", "section": "credentials", "submit": "Rename"},
    )


@environment_page(manage=True)
def credential_invalidate(request, environment, credential_id):
    credential = _credential(environment, credential_id)
    form = InvalidateForm(request.POST or None)
    holders = credential_in_use_by(credential)
    if request.method == "POST" and form.is_valid():
        try:
            invalidate_credential(credential, reason=form.cleaned_data["reason"], actor=request.actor)
        except CredentialError as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request,
                f"“{credential.name}” is invalidated: it can no longer obtain tokens. "
                "Tokens it already obtained stay valid until they expire.",
            )
            return redirect("credentials", slug=environment.slug)
    return render(
        request,
        "credentials/invalidate.html",
        {
            "credential": credential,
            "form": form,
            "holders": holders,
            "live_tokens": _live_tokens(credential).count(),
            "section": "credentials",
        },
    )


@environment_page(manage=True)
def credential_revoke_tokens(request, environment, credential_id):
    credential = _credential(environment, credential_id)
    form = RevokeTokensForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        count = revoke_tokens(credential=credential, reason=form.cleaned_data["reason"], actor=request.actor)
        messages.success(request, f"Revoked {count} access token{'s' if count != 1 else ''} of “{credential.name}”.")
        return redirect("credentials", slug=environment.slug)
    return render(
        request,
        "credentials/revoke_tokens.html",
        {
            "credential": credential,
            "form": form,
            "live_tokens": _live_tokens(credential).count(),
            "section": "credentials",
        },
    )


@environment_page
def access_history(request, environment):
    tokens = list(AccessToken.objects.filter(environment=environment).select_related("client", "credential")[:200])
    now = timezone.now()
    for token in tokens:
        token.current_state = token.state_at(now)
    return render(request, "credentials/access_history.html", {"tokens": tokens, "section": "credentials"})


def _credential(environment, credential_id) -> Credential:
    return get_object_or_404(
        Credential.objects.select_related("client"), client__environment=environment, pk=credential_id
    )


def _live_tokens(credential: Credential):
    return credential.access_tokens.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def _client_of(environment, client_id: str) -> Client:
    return get_object_or_404(Client.objects.select_related("environment"), environment=environment, client_id=client_id)


@environment_page
def client_detail(request, environment, client_id):
    """A client: its scopes, state and credentials; rename, re-scope, disable or delete it."""
    client = _client_of(environment, client_id)
    if request.method == "POST":
        return _client_action(request, environment, client)
    return _client_page(request, client)


def _client_page(request, client, rename_form=None, scopes_form=None, status=200):
    now = timezone.now()
    return render(
        request,
        "credentials/client.html",
        {
            "section": "credentials",
            "title": client.name,
            "client": client,
            "credentials": [(credential, credential.state_at(now)) for credential in client.credentials.all()],
            "live_tokens": AccessToken.objects.filter(
                client=client, revoked_at__isnull=True, expires_at__gt=now
            ).count(),
            "rename_form": rename_form or RenameForm(initial={"name": client.name}, prefix="rename"),
            "scopes_form": scopes_form
            or ClientScopesForm(environment=client.environment, initial={"scopes": client.scopes}, prefix="scopes"),
            "deletion_problem": client_deletion_problem(client),
        },
        status=status,
    )


def _client_action(request, environment, client):
    if not can_manage(request.role):
        raise PermissionDenied("Viewers can look but not change: ask an Admin for the Program Director role.")
    action = request.POST.get("action", "")
    here = redirect("client_detail", environment.slug, client.client_id)
    if action == "rename":
        form = RenameForm(request.POST, prefix="rename")
        if form.is_valid():
            try:
                rename_client(client, form.cleaned_data["name"], actor=request.actor)
            except CredentialError as error:
                form.add_error("name", str(error))
            else:
                messages.success(request, f"Renamed: “{client.name}”. Its client_id and credentials are unchanged.")
                return here
        return _client_page(request, client, rename_form=form, status=400)
    if action == "scopes":
        form = ClientScopesForm(request.POST, environment=environment, prefix="scopes")
        if form.is_valid():
            try:
                revoked = set_client_scopes(
                    client,
                    form.cleaned_data["scopes"],
                    revoke_live_tokens=form.cleaned_data["revoke_live_tokens"],
                    actor=request.actor,
                )
            except CredentialError as error:
                form.add_error("scopes", str(error))
            else:
                effect = (
                    f"{revoked} token{'s' if revoked != 1 else ''} it held ended now"
                    if form.cleaned_data["revoke_live_tokens"]
                    else "tokens already issued keep their scopes until they expire"
                )
                messages.success(request, f"Scopes saved: {', '.join(client.scopes)}; {effect}.")
                return here
        return _client_page(request, client, scopes_form=form, status=400)
    try:
        if action == "disable":
            revoked = disable_client(client, actor=request.actor)
            ended = ngettext("the %(count)d token it held ended", "the %(count)d tokens it held ended", revoked)
            messages.success(
                request, f"“{client.name}” is disabled: it obtains no token, and {ended % {'count': revoked}}."
            )
        elif action == "enable":
            enable_client(client, actor=request.actor)
            messages.success(request, f"“{client.name}” is enabled: its active credentials obtain tokens again.")
        elif action == "delete":
            delete_client(client, actor=request.actor)
            messages.success(request, f"Client “{client.name}” deleted.")
            return redirect("credentials", environment.slug)
        else:
            messages.error(request, "Nothing was changed: unknown action.")
    except CredentialError as error:
        messages.error(request, f"Nothing was changed: {error}.")
    return here
