"""Upgrading keeps work in flight: a recovery running when the new engine arrives carries on where it was."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

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
