"""Beat's last run per periodic task, written when beat publishes it (signal `before_task_publish`).

Beat keeps its schedule in a local file no other process reads; a row per task in the database lets
/metrics (and so an alert) see that beat stopped, whichever host it runs on.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from celery.signals import before_task_publish
from django.utils import timezone

logger = logging.getLogger(__name__)


def periodic_task_names() -> set[str]:
    """The task names beat sends (its schedule, registered in integration_tools/celery.py, read from the
    current app so that this app does not import the project's)."""
    return {entry["task"] for entry in (current_app.conf.beat_schedule or {}).values()}


@before_task_publish.connect
def note_beat_run(sender: str | None = None, headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Record the publish of a periodic task as beat's run of it; other publishes are not beat's."""
    # Only beat sends these (nothing else in the product publishes them by name).
    if sender not in periodic_task_names():
        return
    from .models import BeatRun

    try:
        BeatRun.objects.update_or_create(task=sender, defaults={"last_run_at": timezone.now()})
    except Exception as error:  # noqa: BLE001 - a missed note must never stop beat sending the task itself
        logger.warning("beat run of %s not recorded: %s", sender, type(error).__name__)
