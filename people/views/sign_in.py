"""Signing in: the password step (throttled, recorded, audited) and the second-factor step."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from portal.actor import Actor

from .. import passkeys, sign_in
from ..factors import has_authenticator_app, second_factor_wait, verify_second_factor
from .passkeys import sign_in_step


class PortalLoginView(auth_views.LoginView):
    """Django's LoginView, with the throttle before the password is checked and every outcome recorded."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = sign_in.normalised(request.POST.get("username", ""))
        actor = Actor.from_request(request)
        with transaction.atomic():
            sign_in.hold(username, actor.ip)
            delay = sign_in.throttle_delay(username, actor.ip)
            if delay:
                sign_in.record_failure(username, actor, refused=True)
            else:
                form = self.get_form()
                if form.is_valid():
                    response = self.form_valid(form)
                    sign_in.record_success(Actor.from_request(request), form.get_user())
                    return response
                sign_in.record_failure(username, actor)
                return self.form_invalid(form)
        context = self.get_context_data(refused_for=delay)
        return self.render_to_response(context, status=429)


@login_required
def verify(request):
    """The second step: a passkey, a code from the authenticator app, or a recovery code."""
    target = request.GET.get("next") or request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    if request.user.is_verified():
        return redirect(target)
    actor = Actor.from_request(request)
    if request.method == "POST" and request.POST.get("action") == "passkey":
        return sign_in_step(request, target)
    if request.method == "POST":
        device = verify_second_factor(request, request.POST.get("code", ""))
        if device is not None:
            factor = "recovery code" if device._meta.model_name == "recoverycodes" else "authenticator app"
            sign_in.record_second_factor(actor, factor)
            if factor == "recovery code":
                messages.warning(
                    request,
                    f"You signed in with a recovery code; {device.codes.count()} left. "
                    "Make new ones on your security page if you are running out.",
                )
            return redirect(target)
        sign_in.summarise_failure(actor, "sign_in.second_factor_failed", request.user.get_username(), "failures")
        messages.error(request, _wrong_code_message(request.user))
        return redirect(f"{request.path}?{request.GET.urlencode()}")
    return render(request, "people/verify.html", _choices(request.user, target))


def _wrong_code_message(user) -> str:
    # Says what this person can enter: someone with only passkeys and recovery codes has no app to read.
    wait = second_factor_wait(user)
    what = (
        "the code your app shows now, or a recovery code"
        if has_authenticator_app(user)
        else "one of your recovery codes, or use a passkey"
    )
    if wait:
        return f"That code did not work. Wait {wait} second{'s' if wait != 1 else ''}, then enter {what}."
    return f"That code did not work. Enter {what}."


def _choices(user, target: str) -> dict:
    """The second step's page: a passkey button for a person with passkeys, the code field for everyone
    (recovery codes are typed there too)."""
    party = passkeys.relying_party()
    return {
        "title": "Second step",
        "next": target,
        "has_app": has_authenticator_app(user),
        "has_passkey": bool(passkeys.passkeys_of(user)),
        "passkey_problem": party.problem,
        "passkey_origin": party.origin,
    }
