"""Invitations: an Admin names a person and their first role; the person gets a one-time link by e-mail that
expires, and chooses their password on it. Only a hash of the link's token is stored."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import secrets
from typing import TYPE_CHECKING, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from environments.access import ADMIN, ROLE_LABELS
from environments.audit import record_audit
from environments.models import Environment
from portal.actor import PORTAL, USER, Actor
from portal.inputs import username_problem

from .directory import create_person, grant_role
from .models import Invitation

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def invite(
    actor: Actor, *, email: str, username: str, role: str, environment: Environment | None, base_url: str
) -> Invitation:
    """Write the invitation and e-mail its link (under `base_url`); ValueError with the sentence to show."""
    email, username = email.strip(), username.strip()
    _check_invitation(email, username, role, environment)
    token = secrets.token_urlsafe(32)
    hours = settings.INVITATION_VALID_HOURS
    with transaction.atomic():
        invitation = Invitation.objects.create(
            email=email,
            username=username,
            token_hash=_hash(token),
            roles={"role": role, "environment": environment.slug if environment else None},
            invited_by=cast("User | None", actor.user),
            expires_at=timezone.now() + datetime.timedelta(hours=hours),
        )
        record_audit(
            actor,
            "user.invited",
            target=invitation,
            target_label=f"{username} <{email}>",
            environment=environment,
            details={"role": role, "valid_hours": hours},
        )
    link = f"{base_url.rstrip('/')}/invitations/{token}/"
    send_mail(
        "You are invited to Integration Tools",
        f"{actor.label} invited you to Integration Tools as {ROLE_LABELS[role]}"
        f"{f' in {environment.name}' if environment else ''}.\n\n"
        f"Choose your password here (the link works once, for {hours} hours):\n{link}\n\n"
        f"Your username: {username}\n",
        None,
        [email],
    )
    return invitation


def _check_invitation(email: str, username: str, role: str, environment: Environment | None) -> None:
    try:
        validate_email(email)
    except Exception:
        raise ValueError(f"“{email}” is not an e-mail address.") from None
    problem = username_problem(username)
    if problem:
        raise ValueError(f"The username {problem}")
    if get_user_model().objects.filter(username__iexact=username).exists():
        raise ValueError(f"There is already a person called {username}.")
    if role not in ROLE_LABELS:
        raise ValueError("Choose a role.")
    if role != ADMIN and environment is None:
        raise ValueError(f"Choose the environment where they will be {ROLE_LABELS[role]}.")


def open_invitation(token: str) -> Invitation | None:
    """The invitation this link stands for while it may still be accepted (unused, not expired), else None."""
    return Invitation.objects.filter(
        token_hash=_hash(token), accepted_at__isnull=True, expires_at__gt=timezone.now()
    ).first()


def accept(invitation: Invitation, password: str, ip: str | None = None):
    """Create the invited person with `password` (Django's validators; ValidationError lists what is wrong)
    and their role, and use up the invitation."""
    User = get_user_model()
    validate_password(password, User(username=invitation.username, email=invitation.email))
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is not None:
            raise ValueError("This invitation has already been used.")
        actor = Actor(kind=USER, label=invitation.username, channel=PORTAL, ip=ip)
        user = create_person(actor, invitation.username, invitation.email, password)
        actor = dataclasses.replace(actor, user=user)
        slug = invitation.roles.get("environment")
        environment = Environment.objects.filter(slug=slug).first() if slug else None
        # The role is the inviter's decision, recorded in their name (the invitee only accepted it).
        inviter = invitation.invited_by
        granter = Actor.for_user(inviter) if inviter else actor
        grant_role(granter, user, invitation.roles["role"], environment)
        locked.accepted_at, locked.user = timezone.now(), user
        locked.save(update_fields=["accepted_at", "user"])
        record_audit(actor, "user.invitation_accepted", target=user, environment=environment)
    return user


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
