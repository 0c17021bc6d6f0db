"""The event stream: positions in commit order, so a reader after P never misses a late commit nor reads twice."""

import json
import threading
import time

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from environments import stream
from environments.models import Event, EventStream
from environments.records import create_record, delete_record, update_record
from environments.tests.factories import make_environment

PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def names(page: stream.Page) -> list[str]:
    return [json.loads(text)["data"]["fields"]["first_name"] for text in page.events]


class HeldWrite:
    """A record written in a transaction of its own thread, held open until `commit()`."""

    def __init__(self, environment, first_name: str):
        self.written, self.release, self.done = threading.Event(), threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(environment, first_name), daemon=True)
        self.thread.start()
        assert self.written.wait(10), "the held write did not start"

    def _run(self, environment, first_name):
        try:
            with transaction.atomic():
                create_record(environment, "patients", {**PATIENT, "first_name": first_name})
                self.written.set()
                self.release.wait(10)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.error = error
            self.written.set()
        finally:
            connection.close()
            self.done.set()

    def commit(self):
        self.release.set()
        assert self.done.wait(10) and self.error is None, self.error


@pytest.mark.django_db(transaction=True)
def test_a_reader_past_a_later_commit_still_gets_the_earlier_write_that_committed_last():
    environment = make_environment("clinic")
    late = HeldWrite(environment, "Late")  # its event's id is the smaller one: it was inserted first
    create_record(environment, "patients", {**PATIENT, "first_name": "Early"})

    first = stream.read(environment, 0, 100)
    assert names(first) == ["Early"]
    late.commit()
    second = stream.read(environment, first.next_position, 100)

    assert names(second) == ["Late"]
    assert stream.read(environment, second.next_position, 100).events == []
    late_event, early_event = Event.objects.order_by("id")
    assert late_event.id < early_event.id and late_event.position > early_event.position


@pytest.mark.django_db(transaction=True)
def test_the_changes_listing_gets_the_late_commit_too_and_each_record_once_at_its_latest_change():
    environment = make_environment("clinic")
    late = HeldWrite(environment, "Late")
    early = create_record(environment, "patients", {**PATIENT, "first_name": "Early"})
    update_record(early, {"first_name": "Earlier"})

    first = stream.changes(environment, "patients", 0, 50)
    assert [change.record_id for change in first.changes] == [early.id] and not first.has_more
    late.commit()
    second = stream.changes(environment, "patients", first.next_position, 50)

    assert len(second.changes) == 1 and second.changes[0].record_id != early.id
    assert stream.changes(environment, "patients", second.next_position, 50).changes == []


@pytest.mark.django_db(transaction=True)
def test_a_deleted_record_is_a_tombstone_in_the_changes_and_pages_split_by_latest_position():
    environment = make_environment("clinic")
    records = [create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"}) for n in range(5)]
    ids = [record.id for record in records]
    delete_record(records[1])
    update_record(records[0], {"first_name": "P0 again"})

    page = stream.changes(environment, "patients", 0, 3)
    rest = stream.changes(environment, "patients", page.next_position, 3)

    order = [change.record_id for change in page.changes + rest.changes]
    assert order == [ids[2], ids[3], ids[4], ids[1], ids[0]]
    assert page.has_more and not rest.has_more
    tombstone = rest.changes[0]
    assert tombstone.deleted and tombstone.record_id == ids[1]


@pytest.mark.django_db(transaction=True)
def test_test_events_never_take_a_position():
    environment = make_environment("clinic")
    with transaction.atomic():
        Event.objects.create(environment=environment, type="patients.created", data={}, is_test=True)
    create_record(environment, "patients", PATIENT)

    stream.assign_positions(environment.pk)

    assert list(Event.objects.order_by("id").values_list("is_test", "position")) == [(True, None), (False, 1)]
    assert EventStream.objects.get(environment=environment).last_position == 1


@pytest.mark.django_db(transaction=True)
def test_a_cursor_older_than_what_was_pruned_is_refused_with_what_to_do():
    environment = make_environment("clinic")
    for n in range(3):
        create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
    stream.assign_positions(environment.pk)
    EventStream.objects.filter(environment=environment).update(pruned_through=2)

    with pytest.raises(stream.CursorExpired):
        stream.read(environment, 1, 10)
    assert len(stream.read(environment, 2, 10).events) == 1


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_returns_as_soon_as_a_commit_is_placed():
    environment = make_environment("clinic")
    head = stream.read(environment, 0, 10).next_position

    def write_soon():
        time.sleep(0.3)
        create_record(environment, "patients", PATIENT)
        connection.close()

    writer = threading.Thread(target=write_soon)
    started = time.monotonic()
    writer.start()
    page = stream.wait_for_events(environment, head, 10, None, 5)
    waited = time.monotonic() - started
    writer.join()

    assert names(page) == ["Ada"]
    assert 0.3 <= waited < 2, waited


# --- Property: random interleavings of writers and readers ------------------------------------------------

writer_plans = st.lists(
    st.tuples(st.floats(0, 0.05), st.floats(0, 0.08), st.integers(1, 3)),  # start after, hold for, records
    min_size=2,
    max_size=5,
)


@pytest.mark.django_db(transaction=True)
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(plans=writer_plans, readers=st.integers(1, 3), page_size=st.integers(1, 4))
def test_no_reader_misses_or_repeats_an_event_however_writers_and_readers_interleave(plans, readers, page_size):
    environment = make_environment()
    stop = threading.Event()
    seen: list[list[str]] = [[] for _ in range(readers)]

    def write(start_after, hold_for, count, index):
        time.sleep(start_after)
        with transaction.atomic():
            for n in range(count):
                create_record(environment, "patients", {**PATIENT, "first_name": f"W{index}-{n}"})
            time.sleep(hold_for)  # later writers commit meanwhile
        connection.close()

    def read(into):
        after = 0
        while True:
            finishing = stop.is_set()
            page = stream.read(environment, after, page_size)
            into.extend(names(page))
            after = page.next_position
            if finishing and not page.events:
                break
            time.sleep(0.005)
        connection.close()

    threads = [threading.Thread(target=read, args=(into,)) for into in seen]
    threads += [threading.Thread(target=write, args=(*plan, index)) for index, plan in enumerate(plans)]
    for thread in threads:
        thread.start()
    for thread in threads[readers:]:
        thread.join()
    stop.set()
    for thread in threads[:readers]:
        thread.join()

    written = sorted(f"W{index}-{n}" for index, plan in enumerate(plans) for n in range(plan[2]))
    for reader in seen:
        assert sorted(reader) == written, "a reader missed or repeated an event"
    positions = list(Event.objects.filter(environment=environment).order_by("position").values_list("id", flat=True))
    assert len(positions) == len(written)


@pytest.mark.django_db(transaction=True)
def test_a_read_event_has_the_id_and_timestamp_a_webhook_body_gives_it_with_or_without_microseconds():
    import datetime

    from environments.models import event_payload

    environment = make_environment("clinic")
    for n in range(2):
        create_record(environment, "patients", {**PATIENT, "first_name": f"P{n}"})
    whole_second = Event.objects.order_by("id").last()
    Event.objects.filter(pk=whole_second.pk).update(
        occurred_at=datetime.datetime(2026, 12, 6, 10, 0, 0, tzinfo=datetime.UTC)
    )

    read = [json.loads(text) for text in stream.read(environment, 0, 10).events]

    for event, shown in zip(Event.objects.order_by("position"), read, strict=True):
        expected = event_payload(event.uid, event.type, event.occurred_at, environment.slug, event.data)
        assert {key: shown[key] for key in expected} == expected
    assert read[1]["timestamp"] == "2026-12-06T10:00:00Z"
