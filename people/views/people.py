"""The People page: Admins run the organisation's people; Program Directors see who has their environments."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render

from environments.access import ADMIN, ROLE_LABELS, is_admin
from environments.models import Environment, Grant
from environments.views.decorators import admin_page
from portal.actor import Actor

from .. import directory, factors, invitations


def _sees_people(user) -> bool:
    return is_admin(user) or Grant.objects.filter(user=user, role=Grant.Role.PROGRAM_DIRECTOR).exists()


def people(request):
    if not request.user.is_authenticated:
        return redirect(f"/login/?next={request.path}")
    if not _sees_people(request.user):
        raise PermissionDenied("The People page is for Admins and Program Directors.")
    if request.method == "POST":
        if not is_admin(request.user):
            raise PermissionDenied("Only Admins invite people.")
        return _invite(request)
    return render(
        request,
        "people/people.html",
        {
            "title": "People",
            "section": "people",
            "rows": directory.people_visible_to(request.user),
            "may_manage": is_admin(request.user),
            "environments": Environment.objects.all(),
            "roles": ROLE_LABELS.items(),
            "values": {},
        },
    )


def _invite(request):
    slug = request.POST.get("environment", "")
    environment = Environment.objects.filter(slug=slug).first() if slug else None
    try:
        invitations.invite(
            Actor.from_request(request),
            email=request.POST.get("email", ""),
            username=request.POST.get("username", ""),
            role=request.POST.get("role", ""),
            environment=environment,
            base_url=request.build_absolute_uri("/"),
        )
    except ValueError as error:
        messages.error(request, f"Nobody was invited: {error}")
    else:
        messages.success(request, f"Invitation sent to {request.POST.get('email', '').strip()}.")
    return redirect("people")


@admin_page
def person(request, user_id: int):
    person = get_object_or_404(get_user_model(), pk=user_id)
    if request.method == "POST":
        try:
            done = _change(request.actor, person, request.POST)
        except ValueError as error:
            messages.error(request, f"Nothing was changed: {error}")
        else:
            messages.success(request, done)
        return redirect("person", user_id=person.pk)
    grants = {grant.environment_id: grant.role for grant in Grant.objects.filter(user=person)}
    return render(
        request,
        "people/person.html",
        {
            "title": person.get_username(),
            "section": "people",
            "person": person,
            "environments": [(env, grants.get(env.pk, "")) for env in Environment.objects.all()],
            "has_mfa": factors.has_second_factor(person),
            "roles": [(key, label) for key, label in ROLE_LABELS.items() if key != ADMIN],
        },
    )


def _change(actor: Actor, person, form) -> str:
    """Carry out the button pressed on a person's page; the sentence that says what was done."""
    action, name = form.get("action", ""), person.get_username()
    if action == "deactivate":
        directory.deactivate(actor, person)
        return f"{name} is deactivated and signed out everywhere."
    if action == "reactivate":
        directory.reactivate(actor, person)
        return f"{name} is active again."
    if action == "reset_factors":
        factors.reset_factors(actor, person)
        return f"{name}'s second factor is reset: they set up a new one at their next sign-in."
    if action == "make_admin":
        directory.grant_role(actor, person, ADMIN)
        return f"{name} is an Admin."
    if action == "remove_admin":
        directory.revoke_role(actor, person)
        return f"{name} is no longer an Admin."
    if action == "set_role":
        environment = get_object_or_404(Environment, slug=form.get("environment", ""))
        role = form.get("role", "")
        if role:
            directory.grant_role(actor, person, role, environment)
            return f"{name} is {ROLE_LABELS[role]} in {environment.name}."
        directory.revoke_role(actor, person, environment)
        return f"{name} has no access to {environment.name}."
    raise ValueError("Unknown action.")
