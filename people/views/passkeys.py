"""Passkeys on the security page and at the second step of signing in.

The page's script (static/js/passkeys.js) fetches the options as JSON (errors as JSON too), lets the browser
make or use a passkey, and posts its answer with an ordinary form: a refusal is said on the page.
"""

from __future__ import annotations

import django_otp
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.actor import Actor

from .. import passkeys
from ..passkeys import PasskeyError
from .security import page_context


def registration_options(request):
    """JSON options for `navigator.credentials.create()`; the form's name field is checked first."""
    return _options(request, lambda: passkeys.registration_options(request.session, request.user, _name(request)))


def sign_in_options(request):
    """JSON options for `navigator.credentials.get()`, after the password step."""
    return _options(request, lambda: passkeys.authentication_options(request.session, request.user))


@login_required
@require_POST
def add(request):
    name = _name(request)
    try:
        passkey, codes = passkeys.register(
            Actor.from_request(request), request.session, request.user, name, request.POST.get("credential", "")
        )
    except PasskeyError as error:
        # The page again with what was typed, and why: nothing the person entered is lost.
        context = page_context(request, []) | {"passkey_error": str(error), "passkey_name": name}
        return render(request, "people/security.html", context, status=400)
    if not request.user.is_verified():
        # Enrolling a first factor (MFA_REQUIRED): the passkey has just proved itself in this session.
        django_otp.login(request, passkey)
    messages.success(request, f'Passkey "{passkey.name}" added: the portal offers it at the second step.')
    if codes:
        return render(request, "people/security.html", page_context(request, codes))
    return redirect("security")


@login_required
@require_POST
def remove(request, passkey_id: int):
    try:
        name, last = passkeys.remove(Actor.from_request(request), request.user, str(passkey_id))
    except PasskeyError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request,
            f'Passkey "{name}" removed.'
            + (" It was your last second factor: your recovery codes no longer work either." if last else ""),
        )
    return redirect("security")


def sign_in_step(request, target: str):
    """The second step's "Use a passkey": on refusal, the same page with the reason, and `next` kept."""
    try:
        passkeys.authenticate(request, request.POST.get("credential", ""))
    except PasskeyError as error:
        messages.error(request, str(error))
        return redirect(f"{request.path}?{request.GET.urlencode()}")
    return redirect(target)


def _options(request, make_options) -> HttpResponse:
    if request.method != "POST":
        return _error("method_not_allowed", "POST the form to this address to get passkey options.", 405)
    if not request.user.is_authenticated:
        return _error("not_signed_in", "Your session ended: sign in again.", 401)
    try:
        response = HttpResponse(make_options(), content_type="application/json")
    except PasskeyError as error:
        return _error("passkey_refused", str(error), 400)
    response["Cache-Control"] = "no-store"  # a challenge is for this one ceremony
    return response


def _error(code: str, message: str, status: int) -> JsonResponse:
    # The Data API's error shape.
    return JsonResponse({"error": {"code": code, "message": message, "details": None}}, status=status)


def _name(request) -> str:
    return request.POST.get("name", "")
