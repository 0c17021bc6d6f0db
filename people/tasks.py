"""Background jobs of the people app."""

from celery import shared_task


@shared_task(name="people.prune_sign_ins", ignore_result=True)
def prune_sign_in_records() -> int:
    """Hourly: sign-in attempts and failure tallies past AUTH_FAILURE_RETENTION_DAYS go (people/retention.py)."""
    from .retention import prune_sign_in_records as prune

    return prune()


@shared_task(name="people.end_lapsed_sessions", ignore_result=True)
def end_lapsed_sessions() -> int:
    """Hourly: sessions idle or too old for over a day end, and the session store's expired rows go."""
    from .sessions import end_lapsed_sessions as end

    return end()
