"""Who the people of the portal are and what they may do: the functions the People page, `grant_access` and
invitations all call. Every change is audited; a person is never deleted, so the trail keeps their name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from environments.access import ADMIN, PROGRAM_DIRECTOR, ROLE_LABELS, is_admin
from environments.audit import record_audit
from environments.models import Environment, Grant
from portal.actor import Actor
from portal.inputs import username_problem

from .factors import people_with_second_factor
from .sessions import end_all_sessions

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def create_person(actor: Actor, username: str, email: str = "", password: str | None = None) -> User:
    """A new active person (ValueError with the sentence to show when the username will not do)."""
    problem = username_problem(username)
    if problem:
        raise ValueError(f"The username {problem}")
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise ValueError(f"There is already a person called {username}.")
    with transaction.atomic():
        user = User.objects.create_user(username, email=email, password=password)
        record_audit(actor, "user.created", target=user)
    return user


def grant_role(actor: Actor, user: User, role: str, environment: Environment | None = None) -> None:
    """Make `user` an Admin (no environment) or give them a role in `environment`."""
    if role not in ROLE_LABELS:
        raise ValueError(f"Unknown role {role!r}: choose one of {', '.join(sorted(ROLE_LABELS))}.")
    with transaction.atomic():
        if role == ADMIN:
            user.is_superuser = user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])
        else:
            if environment is None:
                raise ValueError(f"The {ROLE_LABELS[role]} role is given in one environment: choose it.")
            Grant.objects.update_or_create(user=user, environment=environment, defaults={"role": role})
        record_audit(actor, "user.role_granted", target=user, environment=environment, details={"role": role})


def revoke_role(actor: Actor, user: User, environment: Environment | None = None) -> None:
    """Take away Admin (no environment) or the person's role in `environment`."""
    with transaction.atomic():
        if environment is None:
            if actor.user is not None and actor.user.pk == user.pk:
                raise ValueError("You cannot take away your own Admin role: ask another Admin.")
            user.is_superuser = user.is_staff = False
            user.save(update_fields=["is_superuser", "is_staff"])
        else:
            Grant.objects.filter(user=user, environment=environment).delete()
        record_audit(actor, "user.role_revoked", target=user, environment=environment)


def deactivate(actor: Actor, user: User) -> None:
    """The person can no longer sign in; their open sessions are refused at their next request."""
    if actor.user is not None and actor.user.pk == user.pk:
        raise ValueError("You cannot deactivate yourself: ask another Admin.")
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        ended = end_all_sessions(user)
        record_audit(actor, "user.deactivated", target=user, details={"sessions_ended": ended})


def reactivate(actor: Actor, user: User) -> None:
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        record_audit(actor, "user.reactivated", target=user)


@dataclass
class PersonRow:
    user: User
    roles: list[tuple[str, str]]  # (where, role label)
    has_mfa: bool


def people_visible_to(viewer: User) -> list[PersonRow]:
    """Everyone for an Admin; for a Program Director, the people of the environments they direct (with their
    roles there only). Nobody else sees anyone."""
    User = get_user_model()
    grants = Grant.objects.select_related("environment").order_by("environment__name")
    if is_admin(viewer):
        people = User.objects.order_by("username")
    else:
        directed = Environment.objects.filter(grants__user=viewer, grants__role=PROGRAM_DIRECTOR)
        grants = grants.filter(environment__in=directed)
        people = User.objects.filter(grants__environment__in=directed, is_active=True).distinct().order_by("username")
    roles: dict[int, list[tuple[str, str]]] = {}
    for grant in grants:
        roles.setdefault(grant.user_id, []).append((grant.environment.name, grant.get_role_display()))
    enrolled = people_with_second_factor()
    return [
        PersonRow(
            user=person,
            roles=([("All environments", "Admin")] if person.is_superuser else []) + roles.get(person.pk, []),
            has_mfa=person.pk in enrolled,
        )
        for person in people
    ]
