"""The sign-in gate, after authentication and django-otp's middleware: every request of a signed-in person
goes through it (`SessionGateMiddleware`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import urlencode

from .factors import has_second_factor, mfa_required_for
from .models import OpenSession
from .sessions import SEEN_EVERY, refusal

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Paths a signed-in person may reach before their second factor (or while made to enrol one).
_BEFORE_SECOND_FACTOR = ("/login/", "/logout/", "/static/", "/healthz", "/api/", "/oauth/", "/metrics")
_ENROLMENT = "/account/security/"


class SessionGateMiddleware:
    """After authentication and django-otp's middleware: refuses ended, idle and too-old sessions, and sends a
    person who has not passed their second factor (or must enrol one) to that step before anything else."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_authenticated:
            return self.get_response(request)
        now = timezone.now()
        open_session = OpenSession.objects.filter(session_key=request.session.session_key).first()
        reason = refusal(open_session, now)
        if reason is not None or open_session is None:
            if open_session is not None:
                open_session.delete()
            logout(request)
            messages.info(request, reason or "")
            return redirect(f"/login/?{urlencode({'next': request.path})}")
        if now - open_session.last_seen_at > SEEN_EVERY:
            OpenSession.objects.filter(pk=open_session.pk).update(last_seen_at=now)
        return self._second_factor_step(request) or self.get_response(request)

    def _second_factor_step(self, request: HttpRequest) -> HttpResponse | None:
        user = cast("User", request.user)  # signed in: checked by the caller
        # django-otp's middleware sets `otp_device`: the factor that verified this session, or None.
        if request.path.startswith(_BEFORE_SECOND_FACTOR) or getattr(user, "otp_device", None) is not None:
            return None
        if has_second_factor(user):
            return redirect(f"/login/verify/?{urlencode({'next': request.path})}")
        if mfa_required_for(user) and not request.path.startswith(_ENROLMENT):
            return redirect(_ENROLMENT)
        return None
