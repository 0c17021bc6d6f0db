"""Reconciliation: per webhook and day, produced = delivered + failed + waiting + discarded, exactly."""

import csv
import datetime
import io
import json

import pytest
from django.utils import timezone

from environments.models import Event
from environments.records import create_record
from environments.tests.bad_input import assert_refused
from environments.tests.browser import log_in
from environments.tests.factories import grant, log_in_director, make_environment, make_user
from webhooks import manual
from webhooks.delivery.sending import attempt_delivery
from webhooks.lifecycle import pause_webhook, resume_webhook
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def produce(environment, count: int) -> list[Event]:
    for _ in range(count):
        create_record(environment, "patients", ADA)
    return list(Event.objects.order_by("-id")[:count])


def events_in(body: bytes) -> list[str]:
    payload = json.loads(body)
    return [event["id"] for event in payload.get("events", [payload])]


@pytest.fixture
def env(client):
    environment = make_environment("clinic")
    log_in_director(client, environment)
    return environment


def test_every_event_is_accounted_for_with_batches_resends_discards_and_tests(client, env, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 5]  # the second failure is final
    later = timezone.now() + datetime.timedelta(seconds=30)
    with Receiver() as single_receiver, Receiver() as batch_receiver:
        single = make_webhook(env, single_receiver.url, name="Single")
        batched = make_webhook(env, batch_receiver.url, name="Batched", max_events_per_request=3)
        paused = make_webhook(env, single_receiver.url, name="Paused")
        pause_webhook(paused)

        produce(env, 7)  # 7 events for each of the three webhooks: 3 + 3 + 1 in the batching one's requests
        answered = []  # what the single webhook's receiver answered, request by request
        deliveries = list(single.deliveries.order_by("id"))
        for delivery, status in zip(deliveries[:5], [200, 200, 200, 503, 503], strict=True):
            single_receiver.answer(status)
            answered.append(status)
            attempt_delivery(delivery.pk)
        for delivery in deliveries[3:5]:  # both fail again: failed for good
            single_receiver.answer(503)
            answered.append(503)
            attempt_delivery(delivery.pk, now=later)
        single_receiver.answer(200)  # a person re-sends one of them once the receiver is fixed
        answered.append(200)
        carried_out(manual.resend(deliveries[4]))
        single_receiver.answer(200)
        answered.append(200)
        carried_out(manual.send_test(single))  # carries no event: not counted
        # deliveries[5] and [6] are never attempted: waiting

        for delivery in batched.deliveries.order_by("id"):
            attempt_delivery(delivery.pk)
        resume_webhook(paused, discard_waiting=True)

    delivered_to_single = {
        event
        for request, status in zip(single_receiver.requests, answered, strict=True)
        if status == 200 and request.headers.get("webhook-id", "").startswith("msg_")
        for event in (events_in(request.body) if json.loads(request.body)["type"] != "webhook.test" else [])
    }
    delivered_to_batched = [event for request in batch_receiver.requests for event in events_in(request.body)]

    page = client.get("/e/clinic/deliveries/reconciliation/")
    report = page.context["report"]
    rows = {row.webhook_name: row for row in report.rows}
    assert (rows["Single"].produced, rows["Single"].delivered, rows["Single"].failed) == (7, 4, 1)
    assert (rows["Single"].waiting, rows["Single"].discarded, rows["Single"].resent) == (2, 0, 1)
    assert rows["Single"].delivered == len(delivered_to_single)  # what the receiver got
    assert (rows["Batched"].produced, rows["Batched"].delivered, rows["Batched"].requests) == (7, 7, 3)
    assert rows["Batched"].delivered == len(set(delivered_to_batched)) and len(batch_receiver.requests) == 3
    assert (rows["Paused"].produced, rows["Paused"].discarded) == (7, 7)
    assert report.total.produced == 21 == Event.objects.exclude(type="webhook.test").count() * 3
    assert all(row.balances for row in report.rows) and report.total.balances
    html = page.content.decode()
    assert html.count("✓ yes") == 4  # three rows and the total


def test_events_are_counted_on_their_own_day_and_the_csv_matches_the_page(client, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, name="=Bridge")
        yesterday = produce(env, 2)
        Event.objects.filter(pk__in=[event.pk for event in yesterday]).update(
            occurred_at=timezone.now() - datetime.timedelta(days=1)
        )
        produce(env, 3)
        for delivery in webhook.deliveries.order_by("id")[:4]:
            attempt_delivery(delivery.pk)

    today = timezone.localdate()
    response = client.get(f"/e/clinic/deliveries/reconciliation.csv?webhook={webhook.pk}")
    content = b"".join(response.streaming_content).decode()
    assert content.startswith("\ufeffday,")
    rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    assert [(r["day"], r["webhook"], r["produced"], r["delivered"], r["waiting"]) for r in rows] == [
        (today.isoformat(), "'=Bridge", "3", "2", "1"),
        ((today - datetime.timedelta(days=1)).isoformat(), "'=Bridge", "2", "2", "0"),
        ("total", "", "5", "4", "1"),
    ]


def test_a_reversed_or_too_long_range_says_what_to_fix(client, env):
    page = client.get("/e/clinic/deliveries/reconciliation/?since=2026-03-10&until=2026-03-01").content.decode()
    assert "“To” (2026-03-01) is before “From” (2026-03-10): swap them." in page
    page = client.get("/e/clinic/deliveries/reconciliation/?since=2020-01-01&until=2026-03-01").content.decode()
    assert "Choose at most 366 days at a time." in page
    response = client.get("/e/clinic/deliveries/reconciliation.csv?since=9999-01-01&until=9999-01-02")
    assert response.status_code == 400
    assert "Choose a day between 1970 and 9998." in response.content.decode()
    assert client.get("/e/clinic/deliveries/reconciliation/?webhook=99999999").status_code == 200


@pytest.mark.parametrize("day", ["0001-01-01", "0001-01-06"])
def test_a_to_day_in_the_first_week_of_year_one_is_a_form_error_for_a_viewer_too(client, env, day):
    viewer = make_user("viewer")
    grant(viewer, env, "viewer")
    client.force_login(viewer)
    page = assert_refused(client.get(f"/e/clinic/deliveries/reconciliation/?until={day}"), 200)
    assert f"{day} is out of range. Choose a day between 1970 and 9998." in page
    csv_answer = assert_refused(client.get(f"/e/clinic/deliveries/reconciliation.csv?until={day}"), 400)
    assert f"{day} is out of range. Choose a day between 1970 and 9998." in csv_answer


def test_a_to_day_early_in_1970_reports_from_1970_on(client, env):
    page = client.get("/e/clinic/deliveries/reconciliation/?until=1970-01-03").content.decode()
    assert "out of range" not in page and "1970-01-01" in page


def test_a_viewer_sees_the_reconciliation_and_an_outsider_does_not(client, env):
    viewer = make_user("viewer")
    grant(viewer, env, "viewer")
    client.force_login(viewer)
    assert client.get("/e/clinic/deliveries/reconciliation/").status_code == 200
    client.force_login(make_user("outsider"))
    assert client.get("/e/clinic/deliveries/reconciliation/").status_code == 404


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1440])
def test_the_report_reads_at_a_phones_and_a_desktops_width(page, width):
    environment = make_environment("ward")
    grant(make_user("dana"), environment)
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, name="Lab results bridge with a long name")
        produce(environment, 3)
        attempt_delivery(webhook.deliveries.order_by("id").first().pk)

    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto("/e/ward/deliveries/")
    page.get_by_role("link", name="Reconciliation").click()
    row = page.locator("table.reconciliation tbody tr")
    assert row.count() == 1
    cells = row.locator("td").all_inner_texts()
    assert cells[1:8] == ["Lab results bridge with a long name", "3", "1", "0", "2", "0", "✓ yes"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.get_by_label("From").fill("2026-03-10")
    page.get_by_label("To").fill("2026-03-01")
    page.get_by_role("button", name="Show").click()
    assert "swap them" in page.get_by_role("alert").inner_text()
    assert not page.console_errors
