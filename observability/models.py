"""What observability stores of its own: when beat last sent each periodic task."""

from django.db import models


class BeatRun(models.Model):
    """The last time beat sent a periodic task (its name, as in integration_tools/celery.py)."""

    task = models.CharField(max_length=100, unique=True)
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.task} at {self.last_run_at:%Y-%m-%d %H:%M:%S}"
