"""Telling people: a notice per person and occasion, written once, then e-mailed once.

Several workers may scan at the same moment. The unique (user, kind, key) lets one
insert win; the e-mail goes to whoever first sets `emailed_at` on the notice (a
conditional UPDATE), so each person gets one message however many workers run. A
failed send puts `emailed_at` back, and a later scan tries again, up to
EMAIL_ATTEMPTS times. A worker killed between taking an e-mail and sending it
loses that e-mail; the notice stays in the portal.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from environments.access import people_to_tell

from .models import Mute, Notice
from .occasions import Occasion, pending

logger = logging.getLogger(__name__)

EMAIL_ATTEMPTS = 3


def scan(now: datetime.datetime | None = None) -> int:
    """Find every occasion, tell whoever has not been told, and send due e-mails. Returns new notices."""
    created = record(pending(now))
    send_pending_emails()
    return created


def record(occasions: Iterable[Occasion]) -> int:
    """Write a notice per occasion for each person to tell who has not muted its kind and has none yet."""
    created = 0
    for occasion in occasions:
        people = people_to_tell(occasion.environment).exclude(
            pk__in=Mute.objects.filter(kind=occasion.kind).values("user")
        )
        told = Notice.objects.filter(kind=occasion.kind, key=occasion.key).values("user")
        for user_id in people.exclude(pk__in=told).values_list("pk", flat=True):
            created += _write(occasion, user_id)
    return created


def _write(occasion: Occasion, user_id: int) -> int:
    try:
        with transaction.atomic():
            Notice.objects.create(
                user_id=user_id,
                environment=occasion.environment,
                kind=occasion.kind,
                key=occasion.key,
                subject=occasion.subject,
                body=occasion.body,
                link=occasion.link,
            )
    except IntegrityError:
        # Another worker told this person first.
        return 0
    return 1


def send_pending_emails() -> int:
    """E-mail every notice not yet e-mailed to a person with an address. Returns how many were sent."""
    since = timezone.now() - datetime.timedelta(days=settings.NOTIFICATIONS_LOOKBACK_DAYS)
    waiting = (
        Notice.objects.filter(emailed_at__isnull=True, email_attempts__lt=EMAIL_ATTEMPTS, created_at__gte=since)
        .exclude(user__email="")
        .select_related("user")
        .order_by("created_at")
    )
    sent = 0
    for notice in waiting:
        taken = Notice.objects.filter(pk=notice.pk, emailed_at__isnull=True).update(
            emailed_at=timezone.now(), email_attempts=F("email_attempts") + 1
        )
        if not taken:
            continue
        try:
            send_mail(
                f"[Integration Tools] {notice.subject}",
                email_text(notice),
                settings.DEFAULT_FROM_EMAIL,
                [notice.user.email],
            )
        except Exception as error:  # noqa: BLE001 - any transport failure: try again at the next scan
            Notice.objects.filter(pk=notice.pk).update(emailed_at=None)
            logger.warning("notice %s: e-mail not sent (%s)", notice.pk, type(error).__name__)
        else:
            sent += 1
    return sent


def email_text(notice: Notice) -> str:
    """The e-mail body: what happened, and a link to the page where it is dealt with."""
    portal = settings.PORTAL_URL.rstrip("/")
    return (
        f"{notice.body}\n\n"
        f"Open it: {portal}{notice.link}\n\n"
        f"You are told this as a Program Director or Admin. Choose what you are told about at "
        f"{portal}{reverse('notifications')}#settings\n"
    )
