"""Checks: how many ranges of deliveries the settings keep (PostgreSQL, webhooks/delivery_ranges.py).

The engine finds a webhook's waiting work with statements that name no delivery id, so PostgreSQL plans each of
them over every range: the backlog drained 627–756 deliveries/s with 4 to 15 ranges, 308/s with 25 and 44/s
with 73 (docs/capacity.md). Longer retention wants longer ranges, not more of them.
"""

import math

from django.conf import settings
from django.core.checks import Tags, Warning, register

MOST_RANGES = 16


def ranges_kept() -> int:
    """About how many ranges of deliveries the settings keep at once: those inside the retention, the one
    crossing it (not yet droppable), the current one and those made ahead."""
    within = math.ceil(settings.DELIVERY_RETENTION_DAYS / max(1, settings.DELIVERY_RANGE_DAYS))
    return within + 2 + settings.DELIVERY_RANGES_AHEAD


@register(Tags.database)
def delivery_ranges_kept(app_configs=None, **kwargs) -> list[Warning]:
    kept = ranges_kept()
    if kept <= MOST_RANGES:
        return []
    spare = MOST_RANGES - 2 - settings.DELIVERY_RANGES_AHEAD  # ranges left for those inside the retention
    if spare < 1:
        hint = f"Set DELIVERY_RANGES_AHEAD to {MOST_RANGES - 3} or fewer (each is about a range's days of room)."
    else:
        days = math.ceil(settings.DELIVERY_RETENTION_DAYS / spare)
        hint = (
            f"Set DELIVERY_RANGE_DAYS to {days} or more (a range a time is dropped, so history is kept at most "
            "that much longer than DELIVERY_RETENTION_DAYS)."
        )
    return [
        Warning(
            f"These settings keep about {kept} ranges of deliveries: every claim of waiting work is planned over "
            "each of them, and sending slows down past 16.",
            hint=hint,
            id="integration_tools.W103",
        )
    ]
