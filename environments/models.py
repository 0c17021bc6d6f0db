"""Configurations, environments, the data they house, who may see them, and the audit trail.

Models hold data and small derived properties; the rules live in the service
modules beside this one (`configurations.py`, `records.py`, `audit.py`, `access.py`).
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Configuration(models.Model):
    """A named set of settings, above all a data schema, edited as versions."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=63, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConfigurationVersion(models.Model):
    """One version of a configuration's schema: a draft until it is published."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    configuration = models.ForeignKey(Configuration, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    schema = models.JSONField()
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["configuration", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["configuration", "number"], name="unique_version_number"),
        ]

    def __str__(self) -> str:
        return f"{self.configuration.name} v{self.number}"

    @property
    def is_draft(self) -> bool:
        return self.state == self.State.DRAFT

    @property
    def data_type_names(self) -> list[str]:
        # A draft may hold any JSON object the editor accepted; never fail on its shape.
        data_types = self.schema.get("data_types") if isinstance(self.schema, dict) else None
        return sorted(data_types) if isinstance(data_types, dict) else []


class Environment(models.Model):
    """Houses data and is the unit of integration: its own records, credentials and webhooks."""

    class Kind(models.TextChoices):
        TEST = "test", "Test"
        LIVE = "live", "Live"
        SANDBOX = "sandbox", "Sandbox"

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=63, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEST)
    configuration = models.ForeignKey(Configuration, on_delete=models.PROTECT, related_name="environments")
    published_version = models.ForeignKey(
        ConfigurationVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="environments",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Days events are kept in the stream (the feed, numbered re-reads); null uses EVENT_RETENTION_DAYS.
    # Never shorter in effect than the oldest delivery still waiting needs (environments/outbox.py).
    event_retention_days = models.PositiveIntegerField(null=True, blank=True)
    # Days webhook request and response bodies are kept; null keeps them as long as the deliveries.
    # Ids, times, status codes and event types stay for the delivery retention (DELIVERY_RETENTION_DAYS).
    payload_retention_days = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_live(self) -> bool:
        """Live environments hold real data: the portal marks them "Live" wherever it names the environment."""
        return self.kind == self.Kind.LIVE

    @property
    def schema(self) -> dict:
        """The published schema, or an empty one before anything is published."""
        if self.published_version is None:
            return {"data_types": {}}
        return self.published_version.schema

    @property
    def data_types(self) -> list[str]:
        return sorted(self.schema.get("data_types", {}))

    @property
    def event_types(self) -> list[str]:
        """Event types this environment can emit, derived from its published schema."""
        return [f"{name}.{action}" for name in self.data_types for action in Record.ACTIONS]


class Grant(models.Model):
    """A user's role in one environment. Admins (superusers) need no grant: they see all."""

    class Role(models.TextChoices):
        PROGRAM_DIRECTOR = "program_director", "Program Director"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="grants")
    role = models.CharField(max_length=32, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "environment"], name="one_grant_per_user_and_environment"),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()} in {self.environment}"


class Record(models.Model):
    """One item of data of one data type, validated against the environment's published schema."""

    ACTIONS = ("created", "updated", "deleted")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="records")
    data_type = models.CharField(max_length=63)
    external_id = models.CharField(max_length=255, null=True, blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "data_type", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="unique_external_id_per_data_type",
            ),
        ]
        indexes = [
            # The Data API lists by (updated_at, id) for stable cursor pagination.
            models.Index(fields=["environment", "data_type", "updated_at", "id"], name="record_listing"),
        ]

    def __str__(self) -> str:
        return f"{self.data_type}/{self.id}"


class Event(models.Model):
    """A fact about a change, written in the same transaction as the change: the outbox.

    The id is given at insert, so it does not order events in commit order on
    PostgreSQL. `position` does: it is given after the commit, by the stream's
    sequencer (`environments.stream`), one environment at a time. `uid` is the
    stable public identifier sent to receivers. A test send's event (`is_test`)
    never gets a position: it is not part of the stream.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=127)
    record_id = models.UUIDField(null=True, blank=True)
    data = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(default=timezone.now)
    position = models.BigIntegerField(null=True, blank=True)
    is_test = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(fields=["environment", "id"], name="event_by_environment"),
            # What the sequencer still has to place: small, as it is emptied within moments of each commit.
            models.Index(
                fields=["environment", "id"],
                condition=models.Q(position__isnull=True, is_test=False),
                name="event_unpositioned",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "position"],
                condition=models.Q(position__isnull=False),
                name="event_position_in_stream",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @property
    def public_id(self) -> str:
        return f"evt_{self.uid.hex}"


class EventStream(models.Model):
    """An environment's stream of events: the last position given, and how far it has been pruned.

    Its row is also the sequencer's lock (`environments.stream.assign_positions`).
    """

    environment = models.OneToOneField(Environment, primary_key=True, on_delete=models.CASCADE, related_name="+")
    last_position = models.BigIntegerField(default=0)
    # Every event at or below this position has been pruned: a cursor before it cannot be served.
    pruned_through = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.environment_id} at {self.last_position}"


def event_payload(uid: uuid.UUID, event_type: str, occurred_at, environment_slug: str, data: dict) -> dict:
    """An event as receivers see it; also used for webhook bodies, which are built from events read without the ORM."""
    return {
        "id": f"evt_{uid.hex}",
        "type": event_type,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "environment": environment_slug,
        "data": data,
    }


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only; they cannot be updated.")

    def delete(self):
        raise TypeError("Audit events are append-only; they cannot be deleted.")


class AuditEvent(models.Model):
    """Append-only record of who did what to which object, from where, and when.

    Write through `environments.audit.record_audit`. On PostgreSQL a trigger
    also refuses UPDATE and DELETE, so the guarantee holds below the ORM too.
    """

    class ActorType(models.TextChoices):
        USER = "user", "User"
        CLIENT = "client", "API client"
        SYSTEM = "system", "System"

    occurred_at = models.DateTimeField(default=timezone.now)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the trail still reads right after a user or client is gone.
    actor_label = models.CharField(max_length=255)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=255, blank=True)
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        # The Audit page's orders and filters (environments/audit_log.py): each a page in order off one index.
        # On PostgreSQL migration 0009 adds a trigram index for the actor filter (part of a name, any case).
        indexes = [
            models.Index(fields=["-occurred_at", "-id"], name="audit_newest"),
            models.Index(fields=["environment", "-occurred_at", "-id"], name="audit_environment_newest"),
            models.Index(fields=["action", "-occurred_at", "-id"], name="audit_action_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {self.target_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit events are append-only; they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only; they cannot be deleted.")


class WorkerHeartbeat(models.Model):
    """The last time each Celery worker proved it was running tasks (shown on Overview)."""

    hostname = models.CharField(max_length=255, unique=True)
    # A report from a task: the worker consumes its queue.
    last_seen = models.DateTimeField()
    # A report from a thread of the worker process, not a task: a long queue does not delay it, so a worker
    # that is running but busy is told from one that is not running.
    alive_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.hostname} at {self.last_seen:%H:%M:%S}"


class WorkerOutage(models.Model):
    """A time when no worker reported in for longer than WORKER_SILENT_AFTER_SECONDS: nothing was sent."""

    started_at = models.DateTimeField(help_text="The last report before the silence.")
    ended_at = models.DateTimeField(help_text="The first report after it.")
    # Counted once, when Admins are first told (notifications/occasions.py), then kept.
    waited = models.PositiveIntegerField(null=True, blank=True, help_text="Deliveries made during the outage.")

    class Meta:
        ordering = ["-ended_at"]

    def __str__(self) -> str:
        return f"no worker from {self.started_at:%H:%M:%S} to {self.ended_at:%H:%M:%S}"

    @property
    def duration(self):
        return self.ended_at - self.started_at


class Preference(models.Model):
    """A person's portal settings: the time zone times are shown in, and the environment used last."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    time_zone = models.CharField(max_length=64, default="UTC")
    last_environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.user} in {self.time_zone}"


class BeatLease(models.Model):
    """Which Celery beat sends the periodic tasks: one row, held by one beat at a time however many run (one
    per worker host), renewed on each of its ticks and taken over by another once it runs out."""

    holder = models.CharField(max_length=255)
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"beat lease held by {self.holder} until {self.until:%H:%M:%S}"
