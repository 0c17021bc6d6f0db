"""Every write to a record leaves its event in the same transaction, or neither exists."""

import pytest
from django.db import transaction

from environments.events import emit_event
from environments.models import Event, Record, event_payload
from environments.records import (
    DuplicateExternalId,
    RecordInvalid,
    create_record,
    delete_record,
    update_record,
)
from environments.tests.factories import make_environment

pytestmark = pytest.mark.django_db

ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def test_creating_a_record_emits_a_created_event_with_the_record():
    env = make_environment("clinic")
    record = create_record(env, "patients", ADA, external_id="p-1")

    event = Event.objects.get(record_id=record.id)
    assert event.type == "patients.created"
    assert event.data["fields"] == ADA
    assert event.data["external_id"] == "p-1"
    payload = event_payload(event.uid, event.type, event.occurred_at, event.environment.slug, event.data)
    assert payload["id"] == f"evt_{event.uid.hex}"
    assert payload["environment"] == "clinic"
    assert payload["timestamp"].endswith("Z")


def test_a_rolled_back_change_leaves_no_event_behind():
    env = make_environment()
    with pytest.raises(RuntimeError, match="caller failed"), transaction.atomic():
        create_record(env, "patients", ADA)
        raise RuntimeError("caller failed")
    assert Record.objects.count() == 0
    assert Event.objects.count() == 0


def test_events_cannot_be_written_outside_a_transaction(transactional_db):
    env = make_environment()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        emit_event(env, "patients.created", {})
    assert Event.objects.count() == 0


def test_invalid_data_is_refused_with_a_message_per_field_and_nothing_is_written():
    env = make_environment()
    with pytest.raises(RecordInvalid) as caught:
        create_record(env, "patients", {"first_name": 1})
    assert caught.value.errors == {"first_name": "must be a string", "last_name": "this field is required"}
    assert Record.objects.count() == 0
    assert Event.objects.count() == 0


def test_external_ids_are_unique_per_environment_and_data_type():
    env = make_environment()
    other_env = make_environment()
    create_record(env, "patients", ADA, external_id="x-1")
    create_record(other_env, "patients", ADA, external_id="x-1")
    create_record(env, "workers", {"name": "W", "email": "w@example.org"}, external_id="x-1")

    with pytest.raises(DuplicateExternalId, match='a patients record with external_id "x-1" already exists'):
        create_record(env, "patients", ADA, external_id="x-1")
    assert Event.objects.filter(environment=env, type="patients.created").count() == 1


def test_updating_merges_fields_and_says_which_changed():
    env = make_environment()
    record = create_record(env, "patients", {**ADA, "status": "active"})
    update_record(record, {"status": "discharged", "birth_date": "1815-12-10"})

    record.refresh_from_db()
    assert record.data == {**ADA, "status": "discharged", "birth_date": "1815-12-10"}
    event = Event.objects.get(type="patients.updated")
    assert event.data["changed_fields"] == ["birth_date", "status"]
    assert record.updated_at > record.created_at


def test_null_clears_an_optional_field_but_not_a_required_one():
    env = make_environment()
    record = create_record(env, "patients", {**ADA, "status": "active"})
    update_record(record, {"status": None})
    assert "status" not in Record.objects.get(pk=record.pk).data

    with pytest.raises(RecordInvalid) as caught:
        update_record(record, {"last_name": None})
    assert caught.value.errors == {"last_name": "this field is required"}
    assert Record.objects.get(pk=record.pk).data["last_name"] == "Lovelace"
    assert Event.objects.filter(type="patients.updated").count() == 1


def test_deleting_emits_the_last_state():
    env = make_environment()
    record = create_record(env, "patients", ADA, external_id="p-9")
    record_id = record.id
    delete_record(record)

    assert not Record.objects.filter(pk=record_id).exists()
    event = Event.objects.get(type="patients.deleted")
    assert event.record_id == record_id
    assert event.data["fields"] == ADA
    assert event.data["external_id"] == "p-9"


def test_oversized_records_are_refused(settings):
    settings.RECORD_MAX_BYTES = 100
    env = make_environment()
    with pytest.raises(RecordInvalid, match="at most 100 are allowed"):
        create_record(env, "patients", {"first_name": "A" * 90, "last_name": "B"})
    assert Record.objects.count() == 0


def test_events_keep_commit_order_per_environment():
    env = make_environment()
    first = create_record(env, "patients", ADA)
    update_record(first, {"status": "active"})
    delete_record(first)
    assert list(env.events.order_by("id").values_list("type", flat=True)) == [
        "patients.created",
        "patients.updated",
        "patients.deleted",
    ]
