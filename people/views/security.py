"""Your security: second factors (authenticator app, passkeys), recovery codes, open sessions and recent sign-ins;
and your password."""

from __future__ import annotations

import dataclasses

import django_otp
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from environments.audit import record_audit
from portal.actor import USER, Actor

from .. import factors, passkeys, sessions
from ..sign_in import recent_sign_ins


@login_required
def security(request):
    actor = Actor.from_request(request)
    shown_codes: list[str] = []
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action == "confirm_totp":
            device = factors.pending_totp(request.user)
            try:
                shown_codes = factors.confirm_totp(actor, device, request.POST.get("code", ""))
            except ValueError as error:
                messages.error(request, str(error))
                return redirect("security")
            # The session that enrolled the factor has just proved it: it is not asked again.
            django_otp.login(request, device)
            messages.success(request, "Your authenticator app is set up. Keep the recovery codes below.")
        elif action == "new_codes":
            shown_codes = factors.new_recovery_codes(actor, request.user)
            messages.success(request, "New recovery codes made: the old ones no longer work.")
        else:
            return _end_sessions(request, actor, action)
    return render(request, "people/security.html", page_context(request, shown_codes))


def _end_sessions(request, actor: Actor, action: str):
    if action == "end_session":
        key = request.POST.get("session", "")
        if key == request.session.session_key:
            messages.error(request, "That is this browser: use Log out instead.")
        elif sessions.end_session(request.user, key):
            record_audit(actor, "user.session_ended", target=request.user)
            messages.success(request, "That session is ended: its browser is signed out.")
        else:
            messages.error(request, "That session had already ended.")
    elif action == "end_others":
        ended = sessions.end_all_sessions(request.user, keep=request.session.session_key)
        record_audit(actor, "user.sessions_ended", target=request.user, details={"sessions_ended": ended})
        messages.success(request, f"Signed out everywhere else ({ended} session{'s' if ended != 1 else ''}).")
    return redirect("security")


def page_context(request, shown_codes: list[str]) -> dict:
    """What the security page shows; `shown_codes`: recovery codes just made (shown this once)."""
    user = request.user
    has_app = factors.has_authenticator_app(user)
    pending = None if has_app else factors.pending_totp(user)
    party = passkeys.relying_party()
    return {
        "title": "Your security",
        "section": "account",
        "has_app": has_app,
        "enrolled": factors.has_second_factor(user),
        "must_enrol": not factors.has_second_factor(user) and factors.mfa_required_for(user),
        "qr_svg": factors.qr_svg(pending) if pending else "",
        "setup_key": factors.setup_key(pending) if pending else "",
        "shown_codes": shown_codes,
        "codes_left": factors.recovery_codes_left(user),
        "passkeys": passkeys.passkeys_of(user),
        "passkey_problem": party.problem,
        "passkey_origin": party.origin,
        "sessions": sessions.sessions_of(user),
        "current_session": request.session.session_key,
        "sign_ins": recent_sign_ins(user),
    }


class PasswordChange(auth_views.PasswordChangeView):
    """Django's view (old password, then the new one twice through the validators); other sessions end."""

    template_name = "people/password_change.html"
    success_url = reverse_lazy("security")
    extra_context = {"title": "Change your password", "section": "account"}

    def form_valid(self, form):
        old_key = self.request.session.session_key
        response = super().form_valid(form)  # gives this session a new key (update_session_auth_hash)
        sessions.rekey(old_key, self.request.session.session_key)
        user = form.user  # the signed-in person whose password changed
        ended = sessions.end_all_sessions(user, keep=self.request.session.session_key)
        record_audit(
            Actor.from_request(self.request),
            "user.password_changed",
            target=user,
            details={"sessions_ended": ended},
        )
        messages.success(self.request, "Your password is changed; every other session was signed out.")
        return response


class PasswordResetConfirm(auth_views.PasswordResetConfirmView):
    """Django's view: a new password from the e-mailed link ends every session of the person."""

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        ended = sessions.end_all_sessions(user)
        # Nobody is signed in: the person who proved they own the address acts, from this browser.
        actor = dataclasses.replace(Actor.from_request(self.request), kind=USER, label=user.get_username(), user=user)
        record_audit(
            actor,
            "user.password_reset",
            target=user,
            details={"sessions_ended": ended},
        )
        messages.success(self.request, "Your password is changed. Sign in with it.")
        return response
