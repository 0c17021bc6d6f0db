"""Retention: finished deliveries older than DELIVERY_RETENTION_DAYS go; waiting ones are never pruned."""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from .models import Delivery


def prune_deliveries(older_than: datetime.timedelta, *, batch: int = 5000) -> int:
    """Delete finished deliveries (and their attempts) created before now - `older_than`.

    Waiting deliveries are never pruned: that would lose events. Deletes in
    batches so that no single statement holds locks for long.
    """
    cutoff = timezone.now() - older_than
    finished = Delivery.objects.filter(created_at__lt=cutoff).exclude(status__in=Delivery.WAITING)
    deleted = 0
    while True:
        ids = list(finished.order_by("id").values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        with transaction.atomic():
            Delivery.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
