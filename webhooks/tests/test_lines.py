"""An ordered webhook's lines: which are held and by what, giving up on a change, and re-sending out of order.

The sending path that keeps the order is not here: deliveries are set up in the states it leaves them in.
"""

import datetime
import uuid

import pytest
from django.utils import timezone

from environments.models import AuditEvent, Event, Grant, Record
from environments.tests.factories import grant, make_user
from portal.actor import Actor
from webhooks.lines import DiscardRefused, discard_delivery, held_lines, record_label, resend_out_of_order
from webhooks.models import Delivery, DeliveryEvent, ManualSend
from webhooks.tests.factories import make_delivery, make_webhook

pytestmark = pytest.mark.django_db(transaction=True)
URL = "http://127.0.0.1:8009/hook"
RETRYING, PENDING, SUCCEEDED = Delivery.Status.RETRYING, Delivery.Status.PENDING, Delivery.Status.SUCCEEDED


def patient(environment, external_id: str | None = None) -> Record:
    return Record.objects.create(environment=environment, data_type="patients", external_id=external_id, data={})


def change(webhook, record=None, status=PENDING, **fields) -> Delivery:
    """A delivery of `record`'s change (None: of several records, the shared line) as the sending path leaves it
    in `status`."""
    if status == RETRYING:
        fields = {"attempt_count": 3, "last_status_code": 503, **fields}
        fields.setdefault("next_attempt_at", timezone.now() + datetime.timedelta(minutes=10))
    line = Delivery.SHARED_LINE if record is None else getattr(record, "pk", record)
    if fields.get("is_test"):
        line = None  # tests are in no line
    return make_delivery(webhook, record_id=line, status=status, **fields)


def test_per_record_a_failing_change_holds_only_its_records_later_changes(env):
    webhook = make_webhook(env, URL, ordering="record")
    ada, bob, cy = patient(env, "P-ADA"), patient(env, "P-BOB"), patient(env)
    held = change(webhook, ada, RETRYING)
    change(webhook, bob)  # another record's change goes its own way
    change(webhook, ada)
    change(webhook, ada)
    change(webhook, cy, RETRYING)  # failing, but nothing waits behind it
    change(webhook, bob, SUCCEEDED)

    [line] = held_lines(webhook)

    assert (line.head, line.record, line.behind) == (held, "patients/P-ADA", 2)


def test_per_record_a_change_of_several_records_waits_for_and_holds_everything(env):
    webhook = make_webhook(env, URL, ordering="record")
    ada = patient(env, "P-ADA")
    batch = change(webhook, None, RETRYING, event_count=3)
    change(webhook, ada, RETRYING)  # failed before, but waits behind the batch now: not a head
    change(webhook, patient(env))

    [line] = held_lines(webhook)

    assert (line.head, line.record, line.behind) == (batch, "a batch of 3 changes", 2)


def test_strict_only_the_oldest_waiting_delivery_can_hold_and_it_holds_everything(env):
    webhook = make_webhook(env, URL, ordering="strict")
    change(webhook, None, PENDING, is_test=True)  # tests are in no line
    head = change(webhook, patient(env, "P-ADA"), RETRYING)
    change(webhook, patient(env))
    change(webhook, patient(env), RETRYING)

    [line] = held_lines(webhook)

    assert (line.head, line.behind) == (head, 2)


def test_a_webhook_that_does_not_order_has_no_held_lines(env):
    webhook = make_webhook(env, URL)
    ada = patient(env)
    change(webhook, ada, RETRYING)
    change(webhook, ada)

    assert held_lines(webhook) == []


def test_held_lines_are_the_oldest_first_up_to_the_limit(env):
    webhook = make_webhook(env, URL, ordering="record")
    heads = []
    for _ in range(3):
        record = patient(env)
        heads.append(change(webhook, record, RETRYING))
        change(webhook, record)

    assert [line.head for line in held_lines(webhook, limit=2)] == heads[:2]


def test_a_deleted_record_is_named_by_the_id_its_events_carry(env):
    webhook = make_webhook(env, URL, ordering="record")
    gone = uuid.uuid4()
    delivery = change(webhook, gone, RETRYING)
    event = Event.objects.create(environment=env, type="patients.deleted", record_id=gone)
    DeliveryEvent.objects.create(delivery=delivery, event=event)

    assert record_label(delivery) == f"patients/{gone}"


def test_giving_up_on_a_head_discards_it_audited_and_releases_its_line(env):
    webhook = make_webhook(env, URL, ordering="record")
    ada = patient(env, "P-ADA")
    head = change(webhook, ada, RETRYING)
    change(webhook, ada)
    change(webhook, ada)

    discard_delivery(head, actor=Actor.for_command("test"))

    head.refresh_from_db()
    assert (head.status, head.next_attempt_at) == (Delivery.Status.DISCARDED, None)
    event = AuditEvent.objects.get(action="delivery.discarded")
    assert event.actor_label == "manage.py test" and event.details["message_id"] == head.message_id
    assert held_lines(webhook) == []  # the next change of the line is its head now, and has not failed


def test_only_a_waiting_delivery_that_no_one_is_sending_can_be_given_up_on(env):
    webhook = make_webhook(env, URL, ordering="record")
    done = change(webhook, patient(env), SUCCEEDED)
    sending = change(webhook, patient(env), RETRYING, leased_until=timezone.now() + datetime.timedelta(seconds=30))

    with pytest.raises(DiscardRefused, match="is succeeded, no longer waiting"):
        discard_delivery(done, actor=Actor.for_command("test"))
    with pytest.raises(DiscardRefused, match="is being sent right now"):
        discard_delivery(sending, actor=Actor.for_command("test"))

    assert Delivery.objects.filter(status=Delivery.Status.DISCARDED).count() == 0
    assert not AuditEvent.objects.filter(action="delivery.discarded").exists()


def test_re_sending_a_change_after_newer_ones_of_its_record_were_received_is_out_of_order(env):
    webhook = make_webhook(env, URL, ordering="record")
    ada, bob = patient(env, "P-ADA"), patient(env, "P-BOB")
    old = change(webhook, ada, Delivery.Status.FAILED)
    for _ in range(3):
        change(webhook, ada, SUCCEEDED)
    change(webhook, bob, SUCCEEDED)  # another record's: not in its line
    latest = change(webhook, ada, SUCCEEDED)

    assert resend_out_of_order(old) == (
        "Re-sending this change of patients/P-ADA now sends it after 4 newer changes of that record: "
        "the receiver gets older data last."
    )
    assert resend_out_of_order(latest) == ""


def test_re_sending_a_change_ahead_of_an_older_waiting_one_is_out_of_order_but_the_head_is_its_turn(env):
    webhook = make_webhook(env, URL, ordering="record")
    ada = patient(env, "P-ADA")
    head = change(webhook, ada, RETRYING)
    behind = change(webhook, ada)

    assert resend_out_of_order(head) == ""
    assert resend_out_of_order(behind) == (
        "Re-sending this change of patients/P-ADA now sends it before 1 older change of that record that still "
        "waits: the receiver gets older data last."
    )


def test_re_sending_in_a_webhook_that_does_not_order_is_never_out_of_order(env):
    webhook = make_webhook(env, URL)
    ada = patient(env)
    old = change(webhook, ada, Delivery.Status.FAILED)
    change(webhook, ada, SUCCEEDED)

    assert resend_out_of_order(old) == ""


# The pages.


def test_the_webhook_page_says_how_it_sends_and_that_a_429_slowed_it_down_without_failing(client, director, env):
    webhook = make_webhook(env, URL, ordering="record", max_per_second=10.0)
    until = timezone.now() + datetime.timedelta(minutes=2)
    webhook.slowed_until, webhook.slowed_reason = until, "the receiver answered 429, Retry-After: 120"
    webhook.save()

    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()

    assert "In order per record, at most 4 at a time, 10/s" in page
    assert f"Slowed down until {until.astimezone(datetime.UTC):%H:%M:%S}:</strong> the receiver answered 429" in page
    assert "Failing" not in page

    webhook.slowed_until = timezone.now() - datetime.timedelta(seconds=1)
    webhook.save()
    assert "Slowed down" not in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()


def test_the_webhook_page_shows_each_held_line_with_what_releases_it(client, director, env):
    webhook = make_webhook(env, URL, ordering="record")
    ada = patient(env, "P-ADA")
    head = change(webhook, ada, RETRYING)
    change(webhook, ada)
    change(webhook, ada)

    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()

    assert '<h2 id="held-lines-heading">Held lines</h2>' in page
    assert "<strong>patients/P-ADA</strong> waits behind delivery" in page
    assert f'href="/e/clinic/deliveries/{head.pk}/"><code class="details">{head.message_id}</code>' in page
    assert "retrying after 3 attempts, last result 503, next attempt" in page
    assert "2 later changes wait behind it." in page
    assert f'action="/e/clinic/deliveries/{head.pk}/resend/"' in page
    assert f'action="/e/clinic/deliveries/{head.pk}/discard/"' in page


def test_a_webhook_page_with_no_held_line_says_so(client, director, env):
    webhook = make_webhook(env, URL, ordering="strict")

    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()

    assert "No line is held" in page
    assert "Held lines" not in client.get(f"/e/clinic/webhooks/{make_webhook(env, URL).pk}/").content.decode()


def test_giving_up_on_a_held_change_asks_first_then_discards_it(client, director, env):
    webhook = make_webhook(env, URL, ordering="record")
    ada = patient(env, "P-ADA")
    head = change(webhook, ada, RETRYING)
    change(webhook, ada)

    asked = client.post(f"/e/clinic/deliveries/{head.pk}/discard/")
    assert asked.status_code == 200
    assert "The receiver will <strong>never get</strong> this change of patients/P-ADA" in asked.content.decode()
    assert "The 1 delivery waiting behind it goes next." in asked.content.decode()
    head.refresh_from_db()
    assert head.status == RETRYING

    done = client.post(f"/e/clinic/deliveries/{head.pk}/discard/", {"confirm": "discard"})
    assert done["Location"] == f"/e/clinic/webhooks/{webhook.pk}/#held-lines"
    head.refresh_from_db()
    assert head.status == Delivery.Status.DISCARDED
    assert AuditEvent.objects.get(action="delivery.discarded").actor_label == "director"
    page = client.get(done["Location"]).content.decode()
    assert f"{head.message_id} is discarded: the receiver never gets it." in page


def test_viewers_cannot_give_up_on_a_change(client, env):
    webhook = make_webhook(env, URL, ordering="record")
    head = change(webhook, patient(env), RETRYING)
    viewer = make_user("viewer")
    grant(viewer, env, Grant.Role.VIEWER)
    client.force_login(viewer)

    assert client.post(f"/e/clinic/deliveries/{head.pk}/discard/", {"confirm": "discard"}).status_code == 403
    head.refresh_from_db()
    assert head.status == RETRYING


def test_a_re_send_out_of_order_is_explained_and_goes_only_once_confirmed(client, director, env):
    webhook = make_webhook(env, URL, ordering="record")
    ada = patient(env, "P-ADA")
    old = change(webhook, ada, Delivery.Status.FAILED)
    for _ in range(3):
        change(webhook, ada, SUCCEEDED)
    warning = (
        "Re-sending this change of patients/P-ADA now sends it after 3 newer changes of that record: "
        "the receiver gets older data last."
    )

    page = client.get(f"/e/clinic/deliveries/{old.pk}/").content.decode()
    assert warning in page and 'name="out_of_order" value="send"' in page

    refused = client.post(f"/e/clinic/deliveries/{old.pk}/resend/")
    assert not ManualSend.objects.exists()
    said = client.get(refused["Location"]).content.decode()
    assert f"Nothing was sent. {warning} Tick “Send it out of order” to send it anyway." in said

    client.post(f"/e/clinic/deliveries/{old.pk}/resend/", {"out_of_order": "send"})
    assert ManualSend.objects.get().delivery_id == old.pk


def test_the_webhook_page_shows_the_20_oldest_held_lines_and_says_more_are_held(client, director, env):
    webhook = make_webhook(env, URL, ordering="record")
    for _ in range(21):
        record = patient(env)
        change(webhook, record, RETRYING)
        change(webhook, record)

    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()

    assert page.count('class="card held-line"') == 20
    assert "The 20 oldest held lines are shown; more lines are held." in page
