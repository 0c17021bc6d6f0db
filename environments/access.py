"""Who may see and change what: roles per environment.

Admins are superusers and see every environment. Everyone else sees only the
environments granted to them, as Program Director (may change things) or
Viewer (read only). Views call these functions on every request; menus only
reflect them.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from .models import Environment, Grant

ADMIN = "admin"
PROGRAM_DIRECTOR = Grant.Role.PROGRAM_DIRECTOR.value
VIEWER = Grant.Role.VIEWER.value
ROLE_LABELS = {ADMIN: "Admin", PROGRAM_DIRECTOR: "Program Director", VIEWER: "Viewer"}

User = AbstractBaseUser | AnonymousUser


def is_admin(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def visible_environments(user: User) -> QuerySet[Environment]:
    """Environments the user may see, in name order."""
    environments = Environment.objects.select_related("configuration", "published_version")
    if is_admin(user):
        return environments.all()
    if not user.is_authenticated:
        return environments.none()
    return environments.filter(grants__user=user).distinct()


def role_in(user: User, environment: Environment) -> str | None:
    """The user's role in the environment, or None when it is not theirs to see."""
    if is_admin(user):
        return ADMIN
    if not user.is_authenticated:
        return None
    grant = Grant.objects.filter(user=user, environment=environment).only("role").first()
    return grant.role if grant else None


def can_manage(role: str | None) -> bool:
    """Admins and Program Directors change things; Viewers only look."""
    return role in (ADMIN, PROGRAM_DIRECTOR)


def can_read_audit(user: User) -> bool:
    """Admins read the whole trail; Program Directors the part about their environments."""
    return is_admin(user) or Grant.objects.filter(user=user, role=PROGRAM_DIRECTOR).exists()


def audit_environments(user: User) -> QuerySet[Environment]:
    """Environments whose audit trail the user may read."""
    if is_admin(user):
        return Environment.objects.all()
    return Environment.objects.filter(grants__user=user, grants__role=PROGRAM_DIRECTOR)


def people_to_tell(environment: Environment | None) -> QuerySet:
    """Who is told about an environment's integrations: its Program Directors and every Admin, active ones.

    With no environment (the portal as a whole, such as its background worker), only Admins.
    """
    if environment is None:
        return get_user_model().objects.filter(is_superuser=True, is_active=True)
    directors = Q(grants__environment=environment, grants__role=PROGRAM_DIRECTOR)
    return get_user_model().objects.filter(Q(is_superuser=True) | directors, is_active=True).distinct()
