"""The outbox is owned: events past their retention leave the stream as a prefix, never one a delivery
still needs; event data past the payload retention is erased however the event is reached; test sends'
events stay out of the stream and the Overview; `manage.py events` prints the stream as JSON lines."""

import datetime
import glob
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import BASE_DIR, manage_py, subprocess_env
from environments import outbox, stream
from environments.models import AuditEvent, Event
from environments.records import create_record, delete_record, update_record
from environments.tasks import apply_event_retention
from environments.tests.factories import make_environment, make_user
from webhooks import erasure, manual_sends
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Attempt, Delivery
from webhooks.retention import prune_deliveries
from webhooks.tasks import prune_old_deliveries
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)

ADA = {"first_name": "Ada", "last_name": "Lovelace"}
WORKER = {"name": "Grace Hopper", "email": "grace@example.org"}
# Nobody listens here: a delivery to it is never attempted in these tests, so it keeps waiting.
NOWHERE = "http://127.0.0.1:9999/hook"


@pytest.fixture(autouse=True)
def loopback_receivers_allowed(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def env():
    return make_environment("clinic")


def days_ago(days: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


def positions(env) -> list[int]:
    return list(Event.objects.filter(environment=env).order_by("position").values_list("position", flat=True))


def read_positions(env, after: int) -> list[int]:
    return [json.loads(event)["position"] for event in stream.read(env, after, 100).events]


# --- Retention -----------------------------------------------------------------------------------


def test_pruning_goes_in_batches_as_a_prefix_and_stops_at_an_event_a_waiting_delivery_needs(env):
    for _ in range(4):
        create_record(env, "workers", WORKER)  # no webhook: nothing references these
    make_webhook(env, NOWHERE, event_types=["patients.created"])
    create_record(env, "patients", ADA)  # position 5: its delivery waits
    for _ in range(2):
        create_record(env, "workers", WORKER)
    stream.assign_positions(env.pk)
    Event.objects.update(occurred_at=days_ago(200))
    create_record(env, "workers", WORKER)  # position 8: within the retention

    with CaptureQueriesContext(connection) as queries:
        assert outbox.prune_stream(env, batch=3) == 4
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('DELETE FROM "environments_event"')]
    assert len(deletes) == 2  # 3, then 1: one short transaction each
    assert positions(env) == [5, 6, 7, 8]  # 6 and 7 are old and unreferenced, but after 5: the prefix stops
    assert stream.pruned_through(env.pk) == 4
    with pytest.raises(stream.CursorExpired):
        stream.read(env, 3, 100)
    assert read_positions(env, 4) == [5, 6, 7, 8]

    # The delivery ends and is pruned: what it held goes at the next round.
    Delivery.objects.update(status=Delivery.Status.FAILED, created_at=days_ago(200))
    prune_deliveries(datetime.timedelta(days=90))
    assert outbox.prune_stream(env, batch=3) == 3
    assert positions(env) == [8] and stream.pruned_through(env.pk) == 7
    assert outbox.prune_stream(env) == 0 and stream.pruned_through(env.pk) == 7  # never lowered
    assert read_positions(env, 7) == [8]


def test_an_environment_keeps_events_as_long_as_it_says_and_the_change_is_audited(env):
    for _ in range(2):
        create_record(env, "workers", WORKER)
    Event.objects.update(occurred_at=days_ago(40))
    assert apply_event_retention.apply().successful()
    assert Event.objects.count() == 2  # the default, 120 days

    result = manage_py("set_event_retention", "--environment", "clinic", "--days", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Clinic keeps events 30 days."
    audit = AuditEvent.objects.get(action="environment.event_retention_changed")
    assert audit.details["from"] is None and audit.details["to"] == 30
    assert audit.actor_label == "manage.py set_event_retention"
    assert outbox.apply_retention().pruned == 2
    assert stream.pruned_through(env.pk) == 2

    back = manage_py("set_event_retention", "--environment", "clinic", "--default", "--json")
    assert back.returncode == 0 and json.loads(back.stdout)["effective_days"] == 120
    for bad in (["--days", "0"], ["--days", "soon"]):
        refused = manage_py("set_event_retention", "--environment", "clinic", *bad)
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    unknown = manage_py("set_event_retention", "--environment", "nowhere", "--days", "30")
    assert unknown.returncode == 1 and unknown.stderr.strip() == "CommandError: unknown environment: nowhere"


# --- Erasure --------------------------------------------------------------------------------------


def test_payload_retention_erases_event_data_with_no_subscriber_and_after_the_delivery_was_pruned(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"])
        create_record(env, "patients", ADA)
        attempt_delivery(webhook.deliveries.get().pk)
    create_record(env, "workers", WORKER)  # no webhook subscribed
    create_record(env, "patients", {**ADA, "first_name": "Augusta"})  # its delivery still waits
    Event.objects.update(occurred_at=days_ago(40))
    Delivery.objects.update(created_at=days_ago(40))
    prune_deliveries(datetime.timedelta(days=10))  # the delivered one goes, the waiting one stays
    recent = create_record(env, "workers", {**WORKER, "name": "Alan Turing"})

    erasure.set_payload_retention(env, 30)
    assert outbox.apply_retention().erased == 2
    data = {event.type + ":" + str(event.record_id): event.data for event in Event.objects.all()}
    erased = [key for key, value in data.items() if value == {}]
    assert len(erased) == 2 and {key.split(":")[0] for key in erased} == {"patients.created", "workers.created"}
    waiting = Event.objects.get(deliveries__status=Delivery.Status.PENDING)
    assert waiting.data["fields"]["first_name"] == "Augusta"  # still to be sent: keeps its data
    assert Event.objects.get(record_id=recent.pk).data["fields"]["name"] == "Alan Turing"
    assert Event.objects.count() == 4  # rows stay for the event retention: only the data went
    audit = AuditEvent.objects.get(action="events.data_erased")
    assert audit.details == {"retention_days": 30, "count": 2} and audit.actor_label == "event retention"


MARKER = "Quetzalcoatl-5e1f"


def pg_dump_data() -> str:
    """Every row of the test database, as `pg_dump --data-only` prints it."""
    versioned = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), key=lambda path: int(path.split("/")[4]))
    program = versioned[-1] if versioned else shutil.which("pg_dump")
    if program is None:
        pytest.fail("pg_dump is needed to prove no table keeps a copy of erased data: install postgresql-client")
    settings = connection.settings_dict
    result = subprocess.run(
        [
            program,
            "--data-only",
            "--host",
            settings.get("HOST") or "127.0.0.1",
            "--port",
            str(settings.get("PORT") or 5432),
            "--username",
            settings.get("USER") or "postgres",
            settings["NAME"],
        ],
        env={**os.environ, "PGPASSWORD": settings.get("PASSWORD") or ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_after_retention_no_table_keeps_a_copy_of_an_old_events_data(env):
    """The marker is in a patient's name, changed since (the record's row no longer holds it), and in a worker
    deleted since, whose events no webhook subscribed to; the receiver echoes it into each response body."""
    with Receiver(Answer(body=json.dumps({"seen": MARKER}).encode())) as receiver:
        pruned_hook = make_webhook(env, receiver.url, event_types=["patients.created"], name="Pruned")
        kept_hook = make_webhook(env, receiver.url, event_types=["patients.created"], name="Kept")
        patient = create_record(env, "patients", {**ADA, "last_name": MARKER})
        for delivery in Delivery.objects.all():
            attempt_delivery(delivery.pk)
    update_record(patient, {"last_name": "Lovelace"})
    delete_record(create_record(env, "workers", {**WORKER, "name": MARKER}))
    stream.assign_positions(env.pk)
    assert MARKER in pg_dump_data()  # the check can see it

    Event.objects.update(occurred_at=days_ago(200))
    pruned_hook.deliveries.update(created_at=days_ago(200))  # past DELIVERY_RETENTION_DAYS
    kept_hook.deliveries.update(created_at=days_ago(60))  # kept as metadata, its payload erased
    outbox.set_event_retention(env, 365)  # the events stay in the stream: their data must go all the same
    erasure.set_payload_retention(env, 30)
    prune_old_deliveries()  # what beat runs daily
    apply_event_retention()  # and hourly

    # Deliveries past the retention go with their whole range of ids (the one here is still being filled):
    # until then they are metadata, their payload erased.
    assert [delivery.payload_erased_at is not None for delivery in pruned_hook.deliveries.all()] == [True]
    assert kept_hook.deliveries.get().payload_erased_at is not None
    assert Attempt.objects.filter(delivery__webhook=kept_hook).count() == 1
    assert positions(env) == [1, 2, 3, 4]  # created, updated, created, deleted: all still in the stream
    dump = pg_dump_data()
    assert "Lovelace" in dump  # the record's current data is there
    assert MARKER not in dump


# --- Test events ----------------------------------------------------------------------------------


def test_test_events_stay_out_of_the_stream_and_the_overview_and_go_with_their_delivery(env, client):
    create_record(env, "patients", ADA)
    webhook = make_webhook(env, NOWHERE, event_types=["workers.created"])
    test_delivery = manual_sends.new_test_delivery(webhook, "patients.created", {"note": "a test"})
    test_event = Event.objects.get(is_test=True)

    assert [json.loads(event)["type"] for event in stream.read(env, 0, 100).events] == ["patients.created"]
    test_event.refresh_from_db()
    assert test_event.position is None
    client.force_login(make_user(admin=True))
    assert "<dt>Events recorded</dt><dd>1</dd>" in client.get("/e/clinic/").content.decode()

    Event.objects.filter(pk=test_event.pk).update(occurred_at=days_ago(1))
    assert outbox.prune_test_events() == 0  # its delivery still references it
    Delivery.objects.filter(pk=test_delivery.pk).update(status=Delivery.Status.SUCCEEDED, created_at=days_ago(100))
    prune_deliveries(datetime.timedelta(days=90))
    assert outbox.apply_retention().test_events_pruned == 1
    assert not Event.objects.filter(is_test=True).exists()
    assert Event.objects.count() == 1


# --- manage.py events -----------------------------------------------------------------------------


def test_the_events_command_prints_the_stream_after_a_cursor_as_json_lines(env):
    for name in ("Ada", "Grace", "Alan"):
        create_record(env, "patients", {**ADA, "first_name": name})
    create_record(env, "workers", WORKER)

    result = manage_py("events", "--environment", "clinic", "--after", "1")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [event["position"] for event in events] == [2, 3, 4]
    assert [event["data"]["fields"].get("first_name") for event in events] == ["Grace", "Alan", None]
    assert set(events[0]) == {"id", "type", "timestamp", "environment", "position", "data"}
    assert events[0]["environment"] == "clinic" and events[0]["type"] == "patients.created"
    assert result.stderr.strip() == "next cursor: 4"

    limited = manage_py("events", "--environment", "clinic", "--after", "0", "--limit", "2")
    assert [json.loads(line)["position"] for line in limited.stdout.splitlines()] == [1, 2]
    workers = manage_py("events", "--environment", "clinic", "--types", "workers")
    assert [json.loads(line)["type"] for line in workers.stdout.splitlines()] == ["workers.created"]
    bounded = manage_py("events", "--environment", "clinic", "--after", "4", "--follow-for", "0.5")
    assert bounded.returncode == 0 and bounded.stdout == "" and bounded.stderr.strip() == "next cursor: 4"


def lines_of(process: subprocess.Popen) -> queue.Queue:
    """The process's stdout lines as they come, so that a test waits for each with a timeout."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    return lines


def test_the_events_command_follows_new_commits_until_ctrl_c_and_exits_cleanly(env):
    create_record(env, "patients", ADA)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "events", "--environment", "clinic", "--follow"],
        cwd=BASE_DIR,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = lines_of(process)
        assert json.loads(lines.get(timeout=30))["position"] == 1
        create_record(env, "workers", WORKER)  # committed while it follows
        followed = json.loads(lines.get(timeout=10))
        assert followed["position"] == 2 and followed["type"] == "workers.created"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert process.stderr.read().strip() == "next cursor: 2"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_the_events_command_fails_in_one_readable_line(env):
    for _ in range(3):
        create_record(env, "workers", WORKER)
    stream.assign_positions(env.pk)
    Event.objects.update(occurred_at=days_ago(200))
    outbox.prune_stream(env)
    create_record(env, "workers", WORKER)

    expired = manage_py("events", "--environment", "clinic", "--after", "1")
    assert expired.returncode == 1 and expired.stdout == ""
    assert expired.stderr.strip() == (
        "CommandError: the cursor 1 is older than clinic's event retention (events through position 3 were "
        "pruned): resync from the Data API's lists, then go on with --after 4 (the stream's head now, before "
        "the resync)"
    )
    resumed = manage_py("events", "--environment", "clinic", "--after", "3")
    assert [json.loads(line)["position"] for line in resumed.stdout.splitlines()] == [4]
    for args, says in [
        (["--environment", "nowhere"], "unknown environment: nowhere"),
        (["--environment", "clinic", "--after", "soon"], "--after takes a whole number"),
        (["--environment", "clinic", "--limit", "0"], "--limit takes a whole number (1 or more)"),
        (["--environment", "clinic", "--types", "nurses"], "not a data type of clinic: nurses"),
    ]:
        failed = manage_py("events", *args)
        assert failed.returncode == 1 and failed.stdout == "", failed.stdout
        assert len(failed.stderr.strip().splitlines()) == 1 and says in failed.stderr, failed.stderr
