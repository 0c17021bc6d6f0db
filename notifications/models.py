"""Notices told to people, and the kinds each person chose not to be told about.

A notice is written once per (user, kind, key): the key names the occasion (this
webhook's failing spell, this credential's expiry at 3 days), so however many
workers scan at once, each person is told once (`notifications/outbox.py`).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Kind(models.TextChoices):
    WEBHOOK_FAILING = "webhook_failing", "A webhook keeps failing"
    WEBHOOK_DISABLING = "webhook_disabling", "A failing webhook nears its automatic disable (50 % and 90 %)"
    WEBHOOK_DISABLED = "webhook_disabled", "A webhook was disabled"
    CREDENTIAL_EXPIRY = "credential_expiry", "A credential expires in 14 days, in 3 days, and when it has expired"
    RECOVERY_FINISHED = "recovery_finished", "A recovery (bulk re-send) finished"
    WORKER_BACK = "worker_back", "The background worker was not running and is back (Admins)"


class Notice(models.Model):
    """One thing one person was told, in the portal and (if they have an address) by e-mail."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notices")
    environment = models.ForeignKey(
        "environments.Environment", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    # A path inside the portal: the page where the action is.
    link = models.CharField(max_length=500)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    # Set when a worker takes the e-mail on; put back to null when sending fails, so a later scan retries.
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["user", "kind", "key"], name="one_notice_per_occasion")]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="notice_by_user"),
            models.Index(
                fields=["created_at"], name="notice_email_pending", condition=models.Q(emailed_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.subject}"


class Mute(models.Model):
    """A person chose not to be told about one kind of occasion."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_mute_per_kind")]

    def __str__(self) -> str:
        return f"{self.user} muted {self.kind}"
