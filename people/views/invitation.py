"""Accepting an invitation: the invited person chooses their password on the one-time link."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from portal.client_address import client_ip

from .. import invitations


def accept(request, token: str):
    invitation = invitations.open_invitation(token)
    if invitation is None:
        return render(request, "people/invitation_gone.html", {"title": "Invitation"}, status=404)
    errors: list[str] = []
    if request.method == "POST":
        password = request.POST.get("password", "")
        if password != request.POST.get("password_again", ""):
            errors = ["The two passwords differ."]
        else:
            try:
                invitations.accept(invitation, password, ip=client_ip(request))
            except ValidationError as error:
                errors = list(error.messages)
            except ValueError as error:
                errors = [str(error)]
            else:
                messages.success(request, f"Welcome, {invitation.username}. Sign in with your new password.")
                return redirect("login")
    return render(
        request, "people/accept.html", {"title": "Join Integration Tools", "invitation": invitation, "errors": errors}
    )
