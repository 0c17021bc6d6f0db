"""Webhooks, their signing keys, and the deliveries (with every attempt) made to them.

The database is the source of truth: a Delivery row is written in the same
transaction as the event it carries; Celery only carries the work of sending it.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from credentials.fields import EncryptedJSONField, EncryptedTextField


class WebhookQuerySet(models.QuerySet):
    # The conditions of `Webhook.condition`, as filters; in the order that needs attention first.
    CONDITIONS = ("failing", "disabled", "unverified", "paused", "healthy")

    def in_condition(self, condition: str) -> WebhookQuerySet:
        return self.filter(_condition_filter(condition))

    def needing_attention(self) -> WebhookQuerySet:
        return self.filter(
            _condition_filter("failing") | _condition_filter("disabled") | _condition_filter("unverified")
        )

    def with_condition_rank(self) -> WebhookQuerySet:
        """Annotate `condition_rank`: 0 failing, 1 disabled, 2 unverified, 3 paused, 4 healthy."""
        ranks = (models.When(_condition_filter(name), then=rank) for rank, name in enumerate(self.CONDITIONS))
        return self.annotate(condition_rank=models.Case(*ranks))


def _condition_filter(condition: str) -> models.Q:
    active = "active"
    return {
        "failing": models.Q(state=active, failing_since__isnull=False),
        "disabled": models.Q(state="disabled"),
        "unverified": models.Q(state="unverified"),
        "paused": models.Q(state="paused"),
        "healthy": models.Q(state=active, failing_since__isnull=True),
    }[condition]


class Webhook(models.Model):
    """A destination told about changes in one environment, for the event types it opted into."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        DISABLED = "disabled", "Disabled"
        # Endpoint verification pending: deliveries are kept, not sent, until the receiver proves the URL.
        UNVERIFIED = "unverified", "Unverified"

    class SecurityMethod(models.TextChoices):
        SIGNING_SECRET = "secret", "Signing secret"
        CREDENTIALS = "credentials", "Credentials"
        ED25519 = "ed25519", "Ed25519 key pair (receivers hold only the public key)"

    class Ordering(models.TextChoices):
        NONE = "none", "None: in parallel"
        RECORD = "record", "Per record: one record's changes one at a time, in commit order"
        STRICT = "strict", "Strict: one request at a time, in commit order"

    class PayloadFormat(models.TextChoices):
        FULL = "full", "Full: the record as it is after the change"
        THIN = "thin", "Thin: the record's id only (fetch it through the Data API)"

    environment = models.ForeignKey("environments.Environment", on_delete=models.PROTECT, related_name="webhooks")
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=2000)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    disabled_reason = models.CharField(max_length=300, blank=True)
    event_types = models.JSONField(default=list)
    security_method = models.CharField(
        max_length=16, choices=SecurityMethod.choices, default=SecurityMethod.SIGNING_SECRET
    )
    signing_credentials = models.ManyToManyField("credentials.Credential", blank=True, related_name="webhooks")
    verify_tls = models.BooleanField(default=True)
    payload_format = models.CharField(max_length=8, choices=PayloadFormat.choices, default=PayloadFormat.FULL)
    max_events_per_request = models.PositiveSmallIntegerField(default=1)
    timeout_seconds = models.PositiveSmallIntegerField(default=15)
    # The sending policy (webhooks/delivery/lines.py and ledger.py): order, requests in flight, rate.
    ordering = models.CharField(max_length=8, choices=Ordering.choices, default=Ordering.NONE)
    max_in_flight = models.PositiveSmallIntegerField(default=4)
    max_per_second = models.FloatField(null=True, blank=True)
    # Minimum-necessary payloads: per data type, the only fields a full payload carries. A data type not
    # named here sends every field, those added to the schema later included; one named never gains any.
    payload_fields = models.JSONField(default=dict, blank=True)
    # Header values may be a receiver's credentials (Authorization: Bearer …): encrypted at rest.
    extra_headers = EncryptedJSONField(
        default=dict, blank=True, reported_as=("webhook_headers", "webhooks' extra headers")
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_triggered_at = models.DateTimeField(null=True, blank=True)
    # Start of the current run of failed attempts; cleared by any success.
    failing_since = models.DateTimeField(null=True, blank=True)
    # Endpoint verification (webhooks/verification.py): when it was proved, or why an Admin waived it.
    verified_at = models.DateTimeField(null=True, blank=True)
    verification_waived = models.CharField(max_length=300, blank=True)
    verification_tried_at = models.DateTimeField(null=True, blank=True)
    verification_result = models.CharField(max_length=300, blank=True)
    # No request starts before this moment: the rate limit's next free send (a cell-rate gate), and a
    # receiver's 429 Retry-After (`slowed_until`, with what it said, for the page). Neither is a failure.
    rate_next_at = models.DateTimeField(null=True, blank=True)
    slowed_until = models.DateTimeField(null=True, blank=True)
    slowed_reason = models.CharField(max_length=200, blank=True)
    # When a drain is queued to start sending again after the gate opens: one wake-up per gate, not one
    # per task that found it closed.
    wake_up_at = models.DateTimeField(null=True, blank=True)
    # Bumped whenever the keys that sign change: workers cache decrypted keys per (webhook, version).
    keys_version = models.PositiveIntegerField(default=0)
    # The API client it serves: that client's token reads this webhook's numbered events and status
    # (`dataapi/webhook_events.py`). Of the webhook's own environment (`configure` checks it).
    client = models.ForeignKey(
        "credentials.Client", null=True, blank=True, on_delete=models.SET_NULL, related_name="webhooks_served"
    )
    # Heartbeats (webhooks/heartbeats.py): when nothing was sent for this many minutes, a `webhook.heartbeat`
    # goes out; None: off.
    heartbeat_minutes = models.PositiveSmallIntegerField(null=True, blank=True)

    objects = WebhookQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="unique_webhook_name")]

    def __str__(self) -> str:
        return self.name

    def subscribes_to(self, event_type: str) -> bool:
        return event_type in self.event_types

    @property
    def key_algorithm(self) -> str:
        """The kind of its own keys that sign: Ed25519 pairs for that method, `whsec_` secrets otherwise."""
        if self.security_method == self.SecurityMethod.ED25519:
            return SigningSecret.Algorithm.ED25519
        return SigningSecret.Algorithm.HMAC_SHA256

    # Why the sending path disables a webhook whose receiver answered 410 (webhooks/retry_policy.py).
    GONE_REASON = "The receiver answered 410 Gone: it no longer wants these events."

    @property
    def disabled_by_gone(self) -> bool:
        """Disabled because its receiver answered 410: the deliveries that got the 410 failed for good."""
        return self.state == self.State.DISABLED and self.disabled_reason == self.GONE_REASON

    @property
    def key_noun(self) -> str:
        """What people call its signing keys: 'key' for Ed25519 pairs, 'secret' for `whsec_` secrets."""
        return "key" if self.key_algorithm == SigningSecret.Algorithm.ED25519 else "secret"

    @property
    def condition(self) -> str:
        """What people see: disabled and paused as set; an active webhook is *failing* from its first
        failed attempt after a success until its next success, and *healthy* otherwise."""
        if self.state != self.State.ACTIVE:
            return self.state
        return "failing" if self.failing_since else "healthy"

    @property
    def disables_at(self):
        """When a failing webhook is disabled if nothing succeeds before (WEBHOOK_DISABLE_AFTER_FAILING_DAYS)."""
        if self.condition != "failing":
            return None
        return self.failing_since + datetime.timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS)


class WebhookSequence(models.Model):
    """The last number a webhook gave an event it sends (see `delivery/fanout.py`: numbered deliveries).

    A table of its own, not a column of Webhook: the fan-out holds this row locked from numbering an event
    to its commit, and the workers, which write Webhook rows all the time (health, rate gate), must not
    wait on writers.
    """

    webhook = models.OneToOneField(Webhook, primary_key=True, on_delete=models.CASCADE, related_name="+")
    last = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.webhook_id} at {self.last}"


class SigningSecret(models.Model):
    """A signing key of a webhook: a `whsec_` HMAC secret, or an Ed25519 pair (`whsk_` private, `whpk_` public).

    The current one of each kind has no `retires_at`; a rotated one signs until then.
    """

    class Algorithm(models.TextChoices):
        HMAC_SHA256 = "hmac-sha256", "HMAC-SHA256 (whsec_)"
        ED25519 = "ed25519", "Ed25519 (whpk_ / whsk_)"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="signing_secrets")
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, default=Algorithm.HMAC_SHA256)
    hint = models.CharField(max_length=16)
    secret = EncryptedTextField(db_column="secret_encrypted", reported_as=("webhook_keys", "webhook signing keys"))
    # Ed25519 only: the `whpk_` public key, shown on the page and published in the environment's JWKS.
    public_key = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    retires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __repr__(self) -> str:
        return f"<SigningSecret {self.pk} of webhook {self.webhook_id}>"

    def __str__(self) -> str:
        return f"{self.hint}…"

    def is_signing_at(self, moment) -> bool:
        return self.retires_at is None or self.retires_at > moment

    @property
    def uses_client_tls(self) -> bool:
        return bool(self.client_cert or self.ca_bundle)

    @property
    def kid(self) -> str:
        """The key id receivers see in the JWKS: stable, derived from the public key."""
        return "whpk-" + hashlib.sha256(self.public_key.encode()).hexdigest()[:16] if self.public_key else ""


class DeliveryQuerySet(models.QuerySet):
    """The predicates the sending path also writes in SQL (`webhooks/ledger.py`); a test checks both agree."""

    def due(self, now):
        """Waiting and whose next attempt has come."""
        return self.filter(status__in=Delivery.WAITING, next_attempt_at__lte=now)

    def lease_free(self, now):
        """Not being sent by anyone: no lease, or one that has run out."""
        return self.filter(models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now))

    def in_flight(self, now):
        """Being sent right now (a live lease)."""
        return self.filter(leased_until__gte=now)

    def head_of_line(self):
        """Not held behind an older waiting delivery of its line: the twin of `ledger.IN_LINE_SQL`.

        Unordered webhooks and tests have no lines. Strict: one line per webhook. Per record: one line per
        record, and the shared line (batches of several records, changes of no record) waits for, and
        holds, every line.
        """
        return self.filter(_nothing_older_of_its_line(_older_waiting()))

    def claimable_in_line(self, now):
        """Due, not leased, and nothing older of its line holds it back that a claim of its webhook's
        deliveries oldest first could not take with it: the twin of `ledger.IN_LINE_OLDEST_FIRST_SQL`."""
        free = models.Q(leased_until__isnull=True) | models.Q(leased_until__lt=now)
        holding_back = _older_waiting().exclude(models.Q(next_attempt_at__lte=now) & free)
        return self.filter(_nothing_older_of_its_line(holding_back))

    def fan_out_leased(self, now):
        """Leased by the fan-out in the event's own transaction, for the task it queued (see `fanout.py`)."""
        return self.in_flight(now).filter(lease_owner__startswith=Delivery.FAN_OUT_LEASE_MARK)


def _older_waiting() -> models.QuerySet:
    """The waiting deliveries (not tests) of the delivery at hand's webhook that are older than it."""
    return Delivery.objects.filter(
        webhook_id=models.OuterRef("webhook_id"),
        id__lt=models.OuterRef("id"),
        status__in=Delivery.WAITING,
        is_test=False,
    )


def _nothing_older_of_its_line(older: models.QuerySet) -> models.Q:
    """No delivery of `older` is in the line of the delivery at hand: unordered webhooks and tests have no
    lines; strict, one per webhook; per record, one per record, which the shared line is part of."""
    ordering = Webhook.Ordering
    whole_webhook = models.Q(webhook__ordering=ordering.STRICT) | models.Q(
        webhook__ordering=ordering.RECORD, record_id=Delivery.SHARED_LINE
    )
    own_record = (
        models.Q(webhook__ordering=ordering.RECORD)
        & ~models.Q(record_id=Delivery.SHARED_LINE)
        & ~models.Exists(older.filter(record_id=models.OuterRef("record_id")))
        & ~models.Exists(older.filter(record_id=Delivery.SHARED_LINE))
    )
    return (
        models.Q(webhook__ordering=ordering.NONE)
        | models.Q(is_test=True)
        | (whole_webhook & ~models.Exists(older))
        | own_record
    )


class Delivery(models.Model):
    """One HTTP request's worth of events for one webhook, with its schedule and latest result.

    `message_id` is the `webhook-id` header: the same for every attempt and re-send. On PostgreSQL the table
    is partitioned by ranges of id (`webhooks/delivery_ranges.py`), and retention drops whole ranges.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRYING = "retrying", "Retrying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        DISCARDED = "discarded", "Discarded"

    WAITING = (Status.PENDING, Status.RETRYING)
    # The line of a batch of several records, or of a change of no record: it waits for every older
    # delivery of its webhook and holds every newer one (see `DeliveryQuerySet.head_of_line`).
    SHARED_LINE = uuid.UUID(int=0)

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    environment = models.ForeignKey("environments.Environment", on_delete=models.PROTECT, related_name="+")
    # Random (`fanout.new_message_id`), so unique without a constraint: a unique one would have to include
    # the id on a table partitioned by id (webhooks/delivery_ranges.py), which would promise nothing.
    message_id = models.CharField(max_length=40, db_index=True)
    events = models.ManyToManyField("environments.Event", through="DeliveryEvent", related_name="deliveries")
    event_count = models.PositiveSmallIntegerField(default=0)
    # Distinct event types carried, space-separated: shown in lists and filtered on.
    event_types = models.CharField(max_length=500, blank=True)
    is_test = models.BooleanField(default=False)
    # A heartbeat (webhooks/heartbeats.py): sent as tests are (`is_test` is set too), outside lines, retries
    # and the webhook's health; the history shows it as a heartbeat.
    is_heartbeat = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a task for it was last put on the queue; the sweeper re-enqueues only stale ones.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # A claim: while in the future, one worker is sending and no other may.
    leased_until = models.DateTimeField(null=True, blank=True)
    # Who holds the lease (one sending slot); the per-webhook cap counts distinct holders.
    lease_owner = models.CharField(max_length=32, blank=True)
    # How a lease the fan-out took begins (the rest is random); a worker's own leases are plain hex.
    FAN_OUT_LEASE_MARK = "f:"
    # Attempts made early to learn whether a failing receiver is back; they do not advance the retry schedule.
    probes = models.PositiveSmallIntegerField(default=0)
    # The body, frozen at the first attempt so that every attempt sends the same bytes.
    body = models.TextField(blank=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=32, blank=True)
    last_duration_ms = models.PositiveIntegerField(default=0)
    # The record whose change this is (None for a batch of several records, or an event of none): its line
    # when the webhook orders per record (see delivery/lines.py).
    record_id = models.UUIDField(null=True, blank=True)
    # Set just before a request leaves, cleared when its attempt is recorded: still set once the lease has
    # run out, a worker stopped mid-send, and the history gets an attempt whose outcome is unknown.
    sending_since = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Its request and response bodies were erased (by a person or by payload retention); metadata stays.
    payload_erased_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["webhook", "-id"], name="delivery_by_webhook"),
            models.Index(fields=["environment", "-id"], name="delivery_by_environment"),
            models.Index(fields=["webhook", "status", "-id"], name="delivery_by_webhook_status"),
            models.Index(fields=["webhook", "-last_duration_ms", "-id"], name="delivery_by_webhook_duration"),
            models.Index(fields=["webhook", "-attempt_count", "-id"], name="delivery_by_webhook_attempts"),
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_waiting",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
            models.Index(
                fields=["webhook", "record_id", "id"],
                name="delivery_waiting_line",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
            models.Index(
                fields=["webhook", "leased_until"],
                name="delivery_leased",
                condition=models.Q(leased_until__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.message_id

    @property
    def is_waiting(self) -> bool:
        return self.status in self.WAITING

    @property
    def result_label(self) -> str:
        if self.last_status_code is not None:
            return str(self.last_status_code)
        if self.last_error:
            return self.last_error.replace("_", " ")
        return "not sent yet"


class DeliveryEvent(models.Model):
    """The events a delivery carries, in order, each with its number in its webhook's sequence.

    `sequence` is given at fan-out from the webhook's `WebhookSequence`, contiguously from 1, in commit
    order (tests and heartbeats have none); `webhook` repeats the delivery's, so that an event is found by
    (webhook, sequence). On PostgreSQL the table is partitioned by `delivery_id`, on its deliveries' ranges:
    the database's key is (id, delivery_id). `sequence` is unique per webhook by the lock that gives it
    (`WebhookSequence`); an index, not a constraint, as a unique one would have to include `delivery_id`.
    """

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey("environments.Event", on_delete=models.PROTECT, related_name="+")
    # The unique constraint's index serves lookups by webhook: no index of the foreign key's own.
    webhook = models.ForeignKey(
        Webhook, null=True, blank=True, on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    sequence = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "event"], name="unique_delivery_event"),
        ]
        indexes = [
            models.Index(
                fields=["webhook", "sequence"],
                condition=models.Q(sequence__isnull=False),
                name="delivery_event_sequence",
            ),
        ]


class Attempt(models.Model):
    """One HTTP request made for a delivery and what came back.

    On PostgreSQL the table is partitioned by month of `started_at` (`webhooks/partitions.py`): the database's
    key is (id, started_at), `id` stays unique by its sequence, and retention drops whole months.
    """

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        RESEND = "resend", "Manual re-send"
        TEST = "test", "Test"
        PROBE = "probe", "Probe (is the failing receiver back?)"
        HEARTBEAT = "heartbeat", "Heartbeat"

    # The error of an attempt whose worker stopped mid-send (see `delivery.ledger.record_interrupted`).
    OUTCOME_UNKNOWN = "worker_stopped"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    # The delivery's, repeated: a webhook's attempts are read by (webhook, time) without reading its deliveries.
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, db_index=False, related_name="+")
    number = models.PositiveSmallIntegerField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=32, blank=True)
    error_detail = models.CharField(max_length=500, blank=True)
    succeeded = models.BooleanField(default=False)
    triggered_by = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        indexes = [
            models.Index(fields=["delivery", "number"], name="attempt_by_delivery"),
            # The hourly roll-up reads attempts by time.
            models.Index(fields=["started_at"], name="attempt_by_time"),
            models.Index(fields=["webhook", "started_at"], name="attempt_by_webhook"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def outcome(self) -> str:
        """What came back, in words: `HTTP 503`, or what went wrong on the way (`connection refused`)."""
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        if self.error == Attempt.OUTCOME_UNKNOWN:
            return "outcome unknown: the worker stopped"
        return (self.error or "no answer").replace("_", " ")


class BulkResend(models.Model):
    """A background re-send of a webhook's deliveries in a status and time range, with its progress.

    `status_filter` "recover" (the default) means failed or waiting for a retry: every delivery
    that has failed and not yet succeeded.
    """

    RECOVER = "recover"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="bulk_resends")
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    status_filter = models.CharField(max_length=16, default=RECOVER)
    event_type = models.CharField(max_length=127, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    # Of the deliveries it covers: how many have an outcome, and how many of those were delivered (by anyone).
    # Each item adds itself once, as it gets its outcome (`bulk_outcomes.settle`); the items hold the breakdown.
    done = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    # Only deliveries up to this id: new failures after the request are not swept in.
    last_delivery_id = models.BigIntegerField(default=0)
    # A claim, as on deliveries: one worker at a time works through the job.
    leased_until = models.DateTimeField(null=True, blank=True)
    # When a worker last worked on it: the sweeper resumes a job left alone for longer (its worker died).
    stepped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=255, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"bulk re-send {self.pk} of {self.webhook_id}"


class BulkResendItem(models.Model):
    """One delivery a bulk re-send covers, and what the ledger says became of it (blank until it has an outcome)."""

    class Outcome(models.TextChoices):
        BY_JOB = "by_job", "delivered by the job"
        MEANWHILE = "meanwhile", "delivered meanwhile by retries"
        FAILED_AGAIN = "failed_again", "failed again"
        ALREADY_DELIVERED = "already_delivered", "already delivered before the job"
        DISCARDED = "discarded", "discarded"
        PAYLOAD_ERASED = "payload_erased", "payload erased"
        PAUSED = "paused", "webhook paused"
        DISABLED = "disabled", "webhook disabled"
        UNVERIFIED = "unverified", "webhook waiting for verification"
        DELETED = "deleted", "deleted by retention"

    DELIVERED = (Outcome.BY_JOB, Outcome.MEANWHILE)

    job = models.ForeignKey(BulkResend, on_delete=models.CASCADE, related_name="items")
    # Not a foreign key: retention may delete the delivery, which the job then reports as skipped.
    delivery_id = models.BigIntegerField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)

    class Meta:
        indexes = [models.Index(fields=["job", "outcome", "delivery_id"], name="bulk_item_by_outcome")]

    def __str__(self) -> str:
        return f"delivery {self.delivery_id} of {self.job}: {self.outcome or 'no outcome yet'}"


class AttemptHour(models.Model):
    """A webhook's attempts in one closed hour, counted once (attempts never change once recorded).

    The Overview's charts and success rates read these, so they cost the same with
    millions of attempts as with a hundred (`webhooks/rollup.py` writes them).
    """

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    succeeded = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["webhook", "hour"], name="unique_attempt_hour")]
        # /metrics sums today's hours of every webhook at each scrape: by hour, with the counts in the index,
        # that is an index-only range scan instead of a probe per webhook or a scan of every hour kept.
        indexes = [
            models.Index(fields=["hour"], include=["webhook", "succeeded", "failed"], name="attempt_hour_by_hour")
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} at {self.hour:%Y-%m-%d %H:00}: {self.succeeded} ok, {self.failed} failed"


class RollupMark(models.Model):
    """How far a roll-up has counted: every hour before `through` is in its table."""

    name = models.CharField(max_length=32, unique=True)
    through = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} through {self.through:%Y-%m-%d %H:00}"


class ManualSend(models.Model):
    """A send someone asked for: a test delivery, the signature self-test, URL verification or a re-send.

    The web request (or command) only records it here; a worker carries it out
    (`webhooks/carry_out.py`), so that no web worker waits on a receiver. The
    page and the commands read its result from this row: the database, not the
    queue, says what was asked and what came of it.
    """

    class Kind(models.TextChoices):
        TEST = "test", "Test delivery"
        SELF_TEST = "self_test", "Signature self-test"
        VERIFICATION = "verification", "URL verification"
        RESEND = "resend", "Re-send"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="manual_sends")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # What it sends: the delivery (a self-test's signed one) and, for a self-test, the one altered after signing.
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+")
    altered = models.ForeignKey(Delivery, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # A re-send's attempts before it was asked for: an attempt numbered above is its own (a worker that died
    # after sending is not made to send again).
    attempts_before = models.PositiveSmallIntegerField(default=0)
    # URL verification: what the receiver must answer with.
    challenge = models.CharField(max_length=64, blank=True)
    requested_by = models.CharField(max_length=255)
    # Where it was asked from: the worker's audit event of its outcome carries it.
    requested_from = models.GenericIPAddressField(null=True, blank=True)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    # When a task for it was last queued; the sweeper queues again those left unfinished for long.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # While in the future, one worker is carrying it out and no other may.
    leased_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # No database constraint: none can point into the partitioned attempts table by id alone. Retention clears
    # these before it drops a month (`partitions.drop_expired`), as Django does when an attempt is deleted.
    attempt = models.ForeignKey(
        Attempt, on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False, related_name="+"
    )
    altered_attempt = models.ForeignKey(
        Attempt, on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False, related_name="+"
    )
    passed = models.BooleanField(null=True, blank=True)
    # The outcome in one sentence (a self-test's verdict, a verification's result).
    result = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["webhook", "kind", "-id"], name="manual_send_by_webhook"),
            models.Index(
                fields=["requested_at"], name="manual_send_unfinished", condition=models.Q(finished_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} of {self.webhook_id}"

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


# --- Receiver authentication (issue 23): how we prove ourselves to a receiver that demands it ---------------


class ReceiverAuth(models.Model):
    """How a webhook authenticates to its receiver, beyond the signature: an OAuth 2.0 bearer token from the
    receiver's token endpoint (client credentials, with a client secret or `private_key_jwt`).

    No row, or method `none`: nothing but the signature. Secrets and private keys are encrypted at rest and
    never shown again. Any change bumps the webhook's `keys_version`: workers reload it and the token cached
    for the old settings is not used again.
    """

    class Method(models.TextChoices):
        NONE = "none", "None: the signature only"
        OAUTH2_SECRET = "oauth2-secret", "OAuth 2.0 client credentials with a client secret"
        OAUTH2_JWT = "oauth2-jwt", "OAuth 2.0 client credentials with private_key_jwt"

    class SecretMethod(models.TextChoices):
        BASIC = "client_secret_basic", "HTTP Basic (client_secret_basic)"
        POST = "client_secret_post", "In the form (client_secret_post)"

    webhook = models.OneToOneField(Webhook, on_delete=models.CASCADE, related_name="receiver_auth")
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.NONE)
    token_url = models.URLField(max_length=2000, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    client_secret = EncryptedTextField(
        blank=True, default="", reported_as=("receiver_oauth_clients", "receivers' OAuth client secrets")
    )
    secret_method = models.CharField(max_length=24, choices=SecretMethod.choices, default=SecretMethod.BASIC)
    scope = models.CharField(max_length=500, blank=True)
    # The resource (RFC 8707) the token is for, when the receiver's authorization server asks for one.
    resource = models.CharField(max_length=2000, blank=True)
    # private_key_jwt (RFC 7523, SMART Backend Services): a key the portal made; its public half is on the
    # webhook's page and in the environment's JWKS (`public_jwk`, with its `kid`). A replaced key's public half
    # stays published until `previous_retires_at`, for receivers that still verify with it.
    key_algorithm = models.CharField(max_length=8, blank=True)
    private_key = EncryptedTextField(
        blank=True, default="", reported_as=("receiver_oauth_keys", "receivers' OAuth private keys")
    )
    public_jwk = models.JSONField(default=dict, blank=True)
    key_created_at = models.DateTimeField(null=True, blank=True)
    previous_public_jwk = models.JSONField(default=dict, blank=True)
    previous_retires_at = models.DateTimeField(null=True, blank=True)
    # Mutual TLS, with any method: the client certificate (PEM, public) and its key (encrypted); what the page
    # shows of the certificate is kept beside it.
    client_cert = models.TextField(blank=True)
    client_key = EncryptedTextField(
        blank=True, default="", reported_as=("receiver_tls_keys", "receivers' TLS client keys")
    )
    cert_subject = models.CharField(max_length=500, blank=True)
    cert_issuer = models.CharField(max_length=500, blank=True)
    cert_not_after = models.DateTimeField(null=True, blank=True)
    # A key the portal made and the CSR (PEM) to have a certificate issued for it: the key becomes `client_key`
    # when that certificate is uploaded.
    pending_key = EncryptedTextField(
        blank=True, default="", reported_as=("receiver_tls_pending_keys", "receivers' TLS keys awaiting a certificate")
    )
    pending_csr = models.TextField(blank=True)
    # The receiver's own CAs (PEM), trusted for this webhook beside the system roots.
    ca_bundle = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __repr__(self) -> str:
        return f"<ReceiverAuth {self.method} of webhook {self.webhook_id}>"

    @property
    def uses_oauth(self) -> bool:
        return self.method in (self.Method.OAUTH2_SECRET, self.Method.OAUTH2_JWT)

    @property
    def uses_client_tls(self) -> bool:
        return bool(self.client_cert or self.ca_bundle)

    @property
    def kid(self) -> str:
        return str(self.public_jwk.get("kid", ""))

    def published_jwks(self, moment) -> list[dict]:
        """The public keys receivers verify our assertions with: the current one, and the replaced one
        until it retires."""
        if self.method != self.Method.OAUTH2_JWT or not self.public_jwk:
            return []
        keys = [self.public_jwk]
        if self.previous_public_jwk and self.previous_retires_at and self.previous_retires_at > moment:
            keys.append({**self.previous_public_jwk, "expires_at": self.previous_retires_at.isoformat()})
        return keys


class ReceiverToken(models.Model):
    """The access token a webhook's receiver gave us, shared by every worker: one row per webhook, locked
    while a token is fetched so that one worker fetches per expiry (webhooks/delivery/authorization.py)."""

    webhook = models.OneToOneField(Webhook, on_delete=models.CASCADE, related_name="receiver_token")
    # The webhook's keys_version the token was fetched for: settings changed since, the token is not used.
    keys_version = models.PositiveIntegerField(default=0)
    token = EncryptedTextField(blank=True, default="", reported_as=("receiver_bearers", "receivers' access tokens"))
    # When it is fetched again: shortly before the expiry the token endpoint gave.
    refresh_at = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    fetches = models.PositiveIntegerField(default=0)

    def __repr__(self) -> str:
        return f"<ReceiverToken of webhook {self.webhook_id}>"
