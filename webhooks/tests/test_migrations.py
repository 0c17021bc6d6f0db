"""Upgrading keeps work in flight: a recovery running when the new engine arrives carries on where it was."""

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from webhooks import delivery_ranges, partitions

BEFORE = [("webhooks", "0010_manual_sends")]
AFTER = [("webhooks", "0011_bulk_resend_outcomes")]


@pytest.fixture
def back_to_latest_after():
    """Whatever the test does to the schema, later tests find it at the latest migration."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_a_recovery_running_at_the_upgrade_gets_the_deliveries_it_had_not_reached_yet(back_to_latest_after):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Environment = apps.get_model("environments", "Environment")
    Configuration = apps.get_model("environments", "Configuration")
    Webhook = apps.get_model("webhooks", "Webhook")
    Delivery = apps.get_model("webhooks", "Delivery")
    BulkResend = apps.get_model("webhooks", "BulkResend")

    configuration = Configuration.objects.create(name="Clinic")
    environment = Environment.objects.create(name="Clinic", slug="clinic", configuration=configuration)
    webhook = Webhook.objects.create(environment=environment, name="EHR", url="https://ehr.example/hook")

    def delivery(number: int, status: str, **fields):
        return Delivery.objects.create(
            webhook=webhook, environment=environment, message_id=f"msg_{number}", status=status, **fields
        )

    sent_before = delivery(1, "succeeded")  # the job had re-sent this one already (its cursor is past it)
    left = [delivery(2, "failed"), delivery(3, "retrying")]
    delivery(4, "succeeded")  # not something a recovery takes
    delivery(5, "failed", payload_erased_at="2026-12-01T00:00:00Z")  # nothing left to send
    later = delivery(6, "failed")  # failed after the job was asked for: not swept in
    running = BulkResend.objects.create(
        webhook=webhook,
        state="running",
        total=3,
        done=1,
        cursor_id=sent_before.pk,
        last_delivery_id=later.pk - 1,
    )
    finished = BulkResend.objects.create(webhook=webhook, state="done", total=0, last_delivery_id=later.pk)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    apps = executor.loader.project_state(AFTER).apps
    Item = apps.get_model("webhooks", "BulkResendItem")
    assert sorted(Item.objects.filter(job_id=running.pk).values_list("delivery_id", flat=True)) == [
        each.pk for each in left
    ]
    assert not Item.objects.filter(job_id=finished.pk).exists()
    assert set(Item.objects.values_list("outcome", flat=True)) == {""}  # each waits for its outcome


def _a_clinic_at(targets):
    """Migrate to `targets`; their models, and an environment made with them."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    apps = executor.loader.project_state(targets).apps
    Configuration = apps.get_model("environments", "Configuration")
    environment = apps.get_model("environments", "Environment").objects.create(
        name="Clinic", slug="clinic", configuration=Configuration.objects.create(name="Clinic")
    )
    return apps, environment


BEFORE_NUMBERS = [("webhooks", "0014_sending_policy_and_lines"), ("environments", "0007_event_stream")]
AFTER_NUMBERS = [("webhooks", "0015_numbered_deliveries_and_heartbeats")]


@pytest.mark.django_db(transaction=True)
def test_the_events_delivered_before_numbering_are_numbered_per_webhook_and_the_counters_go_on_from_there(
    back_to_latest_after,
):
    apps, environment = _a_clinic_at(BEFORE_NUMBERS)
    Webhook, Delivery = apps.get_model("webhooks", "Webhook"), apps.get_model("webhooks", "Delivery")
    Event, DeliveryEvent = apps.get_model("environments", "Event"), apps.get_model("webhooks", "DeliveryEvent")
    ehr, lab, quiet = (Webhook.objects.create(environment=environment, name=name, url=f"https://{name}.example/h")
                       for name in ("ehr", "lab", "quiet"))  # fmt: skip
    carried = []
    for index, (webhook, is_test, events) in enumerate(
        [(ehr, False, 1), (lab, False, 1), (ehr, True, 1), (ehr, False, 2), (lab, False, 1)]
    ):
        delivery = Delivery.objects.create(
            webhook=webhook, environment=environment, message_id=f"msg_{index}", is_test=is_test
        )
        for _ in range(events):
            event = Event.objects.create(environment=environment, type="patients.created", is_test=is_test)
            carried.append(DeliveryEvent.objects.create(delivery=delivery, event=event).pk)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER_NUMBERS)
    apps = executor.loader.project_state(AFTER_NUMBERS).apps
    numbered = apps.get_model("webhooks", "DeliveryEvent").objects.order_by("id")
    assert [(row.webhook_id, row.sequence) for row in numbered] == [
        (ehr.pk, 1), (lab.pk, 1), (ehr.pk, None), (ehr.pk, 2), (ehr.pk, 3), (lab.pk, 2),
    ]  # fmt: skip
    counters = apps.get_model("webhooks", "WebhookSequence").objects.values_list("webhook_id", "last")
    assert dict(counters) == {ehr.pk: 3, lab.pk: 2, quiet.pk: 0}


BEFORE_PARTITIONS = [("webhooks", "0016_receiver_auth")]
AFTER_PARTITIONS = [("webhooks", "0017_partitioned_attempts")]


@pytest.mark.django_db(transaction=True)
def test_the_attempts_table_becomes_monthly_partitions_keeping_every_attempt_its_id_and_what_names_it(
    back_to_latest_after,
):
    apps, environment = _a_clinic_at(BEFORE_PARTITIONS)
    Webhook, Delivery = apps.get_model("webhooks", "Webhook"), apps.get_model("webhooks", "Delivery")
    Attempt, ManualSend = apps.get_model("webhooks", "Attempt"), apps.get_model("webhooks", "ManualSend")
    webhook = Webhook.objects.create(environment=environment, name="EHR", url="https://ehr.example/hook")
    delivery = Delivery.objects.create(webhook=webhook, environment=environment, message_id="msg_1")
    a_year_ago = timezone.now() - datetime.timedelta(days=365)
    old, recent = (
        Attempt.objects.create(
            delivery=delivery, number=number, trigger="scheduled", started_at=started, duration_ms=5, url=webhook.url
        )
        for number, started in [(1, a_year_ago), (2, timezone.now())]
    )
    ManualSend.objects.create(webhook=webhook, kind="resend", delivery=delivery, requested_by="ann", attempt=recent)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER_PARTITIONS)
    apps = executor.loader.project_state(AFTER_PARTITIONS).apps
    Attempt, ManualSend = apps.get_model("webhooks", "Attempt"), apps.get_model("webhooks", "ManualSend")
    assert sorted(Attempt.objects.values_list("id", "number", "webhook_id")) == [
        (old.pk, 1, webhook.pk),
        (recent.pk, 2, webhook.pk),
    ]
    assert ManualSend.objects.get().attempt_id == recent.pk
    months = [partition.start for partition in partitions.partitions()]
    assert months[0] == partitions.month_of(a_year_ago)
    assert partitions.month_of(timezone.now()) in months
    # The ids go on after the copied ones.
    later = Attempt.objects.create(
        delivery_id=delivery.pk, webhook_id=webhook.pk, number=3, trigger="scheduled", started_at=timezone.now(),
        duration_ms=5, url=webhook.url,
    )  # fmt: skip
    assert later.pk > recent.pk


BEFORE_RANGES = [("webhooks", "0018_attempt_hour_by_hour")]
AFTER_RANGES = [("webhooks", "0019_delivery_ranges")]


@pytest.mark.django_db(transaction=True)
def test_deliveries_and_their_links_move_into_a_range_of_ids_per_month_keeping_every_row_and_what_names_it(
    back_to_latest_after,
):
    apps, environment = _a_clinic_at(BEFORE_RANGES)
    Webhook, Delivery = apps.get_model("webhooks", "Webhook"), apps.get_model("webhooks", "Delivery")
    DeliveryEvent, Event = apps.get_model("webhooks", "DeliveryEvent"), apps.get_model("environments", "Event")
    Attempt, ManualSend = apps.get_model("webhooks", "Attempt"), apps.get_model("webhooks", "ManualSend")
    webhook = Webhook.objects.create(environment=environment, name="EHR", url="https://ehr.example/hook")
    event = Event.objects.create(environment=environment, type="patients.created")
    a_year_ago = timezone.now() - datetime.timedelta(days=365)
    old, recent = (
        Delivery.objects.create(webhook=webhook, environment=environment, message_id=f"msg_{n}", created_at=at)
        for n, at in [(1, a_year_ago), (2, timezone.now())]
    )
    DeliveryEvent.objects.create(delivery=old, event=event, webhook=webhook, sequence=1)
    DeliveryEvent.objects.create(delivery=recent, event=event, webhook=webhook, sequence=2)
    attempt = Attempt.objects.create(
        delivery=recent, webhook=webhook, number=1, trigger="scheduled", started_at=timezone.now(), duration_ms=5,
        url=webhook.url,
    )  # fmt: skip
    ManualSend.objects.create(webhook=webhook, kind="resend", delivery=recent, requested_by="ann", attempt=attempt)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER_RANGES)
    assert delivery_ranges.is_partitioned()
    bounds = delivery_ranges.ranges()
    # A range per month the deliveries were made in (the first takes every id below the second), then room.
    assert bounds[0] == delivery_ranges.Range(None, recent.pk)
    assert bounds[1] == delivery_ranges.Range(recent.pk, recent.pk + 1)
    assert bounds[2].lower == recent.pk + 1
    apps = executor.loader.project_state(AFTER_RANGES).apps
    Delivery, DeliveryEvent = apps.get_model("webhooks", "Delivery"), apps.get_model("webhooks", "DeliveryEvent")
    assert sorted(Delivery.objects.values_list("id", "message_id")) == [(old.pk, "msg_1"), (recent.pk, "msg_2")]
    assert sorted(DeliveryEvent.objects.values_list("delivery_id", "sequence")) == [(old.pk, 1), (recent.pk, 2)]
    assert apps.get_model("webhooks", "ManualSend").objects.get().delivery_id == recent.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE confrelid = 'webhooks_delivery'::regclass"
            " AND contype = 'f' AND conparentid = 0"
        )
        assert sorted(row[0] for row in cursor.fetchall()) == [
            "webhooks_attempt", "webhooks_deliveryevent", "webhooks_manualsend", "webhooks_manualsend",
        ]  # fmt: skip
    # The ids go on after the copied ones, into the range made for them.
    later = Delivery.objects.create(webhook_id=webhook.pk, environment_id=environment.pk, message_id="msg_3")
    assert later.pk == recent.pk + 1
