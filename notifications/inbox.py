"""A person's notices: what is unread, reading them, and the kinds they chose to hear about."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .models import Kind, Mute, Notice


def notices_of(user) -> QuerySet[Notice]:
    return Notice.objects.filter(user=user).select_related("environment")


def unread_count(user) -> int:
    return Notice.objects.filter(user=user, read_at__isnull=True).count()


def mark_read(user, notice_ids: list[int] | None = None) -> int:
    """Mark the user's notices read (these ids, or all). Returns how many changed."""
    unread = Notice.objects.filter(user=user, read_at__isnull=True)
    if notice_ids is not None:
        unread = unread.filter(pk__in=notice_ids)
    return unread.update(read_at=timezone.now())


def muted_kinds(user) -> set[str]:
    return set(Mute.objects.filter(user=user).values_list("kind", flat=True))


def set_muted(user, kinds: set[str]) -> None:
    """Mute exactly these kinds for the user (the others are told again)."""
    kinds = kinds & set(Kind.values)
    with transaction.atomic():
        Mute.objects.filter(user=user).exclude(kind__in=kinds).delete()
        for kind in kinds:
            Mute.objects.get_or_create(user=user, kind=kind)
