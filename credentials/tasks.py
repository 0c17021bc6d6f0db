"""Background jobs of the credentials app."""

from celery import shared_task


@shared_task(name="credentials.prune_failures", ignore_result=True)
def prune_auth_failures() -> int:
    """Hourly: the token endpoint's failure rows past AUTH_FAILURE_RETENTION_DAYS go (credentials/retention.py)."""
    from .retention import prune_auth_failures as prune

    return prune()
