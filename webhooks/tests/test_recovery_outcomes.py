"""A recovery reports what became of each delivery it covers, as the ledger says, whoever sent it.

Receiver fails, records are written, receiver fixed, *Recover* at once: the
first success makes the rest due and the webhook's own sending delivers most of
them. The job must count those as delivered, send none twice, move its progress
as they arrive, and reach its end even when its worker dies.
"""

import datetime
import threading
from collections import Counter

import pytest
from django.utils import timezone

from conftest import kill_process_group, wait_for
from environments.records import create_record
from environments.workers import report_in
from notifications.models import Kind, Notice
from notifications.outbox import email_text, scan
from webhooks.bulk import POLL_SECONDS, bulk_resend_step
from webhooks.bulk_outcomes import Outcomes
from webhooks.delivery import ledger
from webhooks.delivery.sending import attempt_delivery, send_claimed
from webhooks.lifecycle import pause_webhook
from webhooks.models import Attempt, BulkResend, Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver
from webhooks.tests.test_recovery import seed

pytestmark = pytest.mark.django_db(transaction=True)
PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def recover(client, webhook) -> BulkResend:
    """Press Recover on the webhook's page and confirm, as a person would."""
    response = client.post(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"status": "recover"})
    job = BulkResend.objects.get(webhook=webhook)
    assert response.url == f"/e/clinic/webhooks/{webhook.pk}/recoveries/{job.pk}/"
    return job


def finished(job: BulkResend) -> BulkResend:
    return wait_for(
        lambda: BulkResend.objects.filter(pk=job.pk, state=BulkResend.State.DONE).first(),
        timeout=120,
        interval=0.2,
        message=f"recovery job {job.pk} to finish",
    )


def job_page(client, job: BulkResend) -> str:
    return client.get(f"/e/clinic/webhooks/{job.webhook_id}/recoveries/{job.pk}/").content.decode()


def test_recover_right_after_the_receiver_is_fixed_reports_all_30_delivered_whoever_sent_them(
    client, director, env, start_worker, mailoutbox
):
    # The test process tells people itself, after the job, so that the e-mail lands in `mailoutbox`.
    start_worker(NOTIFICATIONS_SCAN_SECONDS="3600")
    fixed = threading.Event()
    delivered_to_receiver = []  # webhook-id of every request the fixed receiver accepted

    def receiver_logic(body, headers):
        if not fixed.is_set():
            return Answer(500)
        delivered_to_receiver.append(headers["webhook-id"])
        return Answer(200)

    with Receiver(judge=receiver_logic) as receiver:
        webhook = make_webhook(env, receiver.url, name="EHR bridge", timeout_seconds=2)
        for n in range(30):
            create_record(env, "patients", {**PATIENT, "first_name": f"P{n}"})
        wait_for(
            lambda: Delivery.objects.filter(webhook=webhook, status="retrying", attempt_count__gte=1).count() == 30,
            timeout=60,
            message="all 30 deliveries to fail and wait for a retry",
        )
        fixed.set()
        job = finished(recover(client, webhook))
        assert receiver.requests

    every_delivery = set(Delivery.objects.filter(webhook=webhook).values_list("message_id", flat=True))
    assert len(every_delivery) == 30
    assert Counter(delivered_to_receiver) == Counter(every_delivery), "each delivered exactly once"
    assert Delivery.objects.filter(webhook=webhook, status="succeeded").count() == 30

    outcomes = Outcomes.of(job)
    assert (outcomes.delivered, outcomes.failed_again, outcomes.skipped, outcomes.open) == (30, 0, 0, 0)
    assert (job.total, job.done, job.succeeded) == (30, 30, 30)
    said = outcomes.delivered_words
    assert said.startswith("30 delivered")

    page = job_page(client, job)
    assert "Done:</strong> 30 of 30 deliveries have an outcome" in page
    assert f"{said}." in page
    assert f"30/30: {said}" in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()

    scan()
    notice = Notice.objects.get(kind=Kind.RECOVERY_FINISHED, user=director)
    assert notice.subject == "Recovery of webhook “EHR bridge” finished: 30 of 30 delivered (Clinic)"
    assert f"UTC: {said}." in notice.body and "failed" not in notice.body
    [email] = [message for message in mailoutbox if message.to == [director.email]]
    assert email.body == email_text(notice) and f"UTC: {said}." in email.body


def test_progress_moves_one_delivery_at_a_time_as_each_reaches_its_outcome(client, director, env, start_worker):
    # The answers come a while apart (the requests go up to the webhook's cap at once), so the progress
    # between two outcomes can be seen.
    with Receiver(default=Answer(delay=0.5)) as receiver:
        for delay in (0.5, 2.0, 3.5, 5.0):
            receiver.answer(200, delay=delay)
        webhook = make_webhook(env, receiver.url, timeout_seconds=8)
        seed(webhook, ["failed"] * 4)
        start_worker()
        job = recover(client, webhook)
        seen = set()

        def progress_is_done():
            current = BulkResend.objects.get(pk=job.pk)
            seen.add(current.done)
            return current.state == BulkResend.State.DONE

        wait_for(progress_is_done, timeout=120, interval=0.05, message="the job to finish")
        job.refresh_from_db()

    assert {1, 2, 3} <= seen, f"progress went {sorted(seen)}"
    assert (job.done, job.succeeded) == (4, 4)
    assert len(receiver.requests) == 4


def test_a_recovery_whose_worker_is_killed_midway_reaches_a_correct_end_on_the_next_worker(
    client, director, env, start_worker
):
    with Receiver(default=Answer(delay=0.4)) as receiver:
        webhook = make_webhook(env, receiver.url, timeout_seconds=2)
        deliveries = seed(webhook, ["retrying"] * 24)
        # It was failing: the job's first success makes the rest due, and the webhook's own sending joins in.
        Webhook.objects.filter(pk=webhook.pk).update(failing_since=timezone.now() - datetime.timedelta(minutes=10))
        first = start_worker()
        job = recover(client, webhook)
        wait_for(
            lambda: Delivery.objects.filter(webhook=webhook, status="succeeded").count() >= 3,
            timeout=60,
            message="a few deliveries to arrive",
        )
        kill_process_group(first)
        stalled = BulkResend.objects.get(pk=job.pk)
        assert stalled.state != BulkResend.State.DONE

        start_worker()
        job = finished(job)
        received = {request.headers["webhook-id"] for request in receiver.requests}

    assert received == {delivery.message_id for delivery in deliveries}
    assert Delivery.objects.filter(webhook=webhook, status="succeeded").count() == 24
    outcomes = Outcomes.of(job)
    assert (outcomes.delivered, outcomes.failed_again, outcomes.skipped) == (24, 0, 0)
    assert (job.done, job.succeeded) == (24, 24)
    page = job_page(client, job)
    assert "Done:</strong> 24 of 24 deliveries have an outcome" in page
    assert "refreshes" not in page


def test_the_job_sends_nothing_a_retry_delivered_first_and_waits_for_what_another_worker_is_sending(
    client, director, env
):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        first, second, third = seed(webhook, ["retrying"] * 3)
        job = recover(client, webhook)
        # Before the job starts, the second's retry comes due and gets through…
        Delivery.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
        assert attempt_delivery(second.pk).succeeded
        # …and another worker is sending the third right now.
        target, claimed, _ = ledger.claim(
            owner="another worker", now=timezone.now(), env_cap=64, margin=30, delivery_id=third.pk, manual=True
        )

        assert bulk_resend_step(job.pk) == POLL_SECONDS, "the job waits for the third"
        job.refresh_from_db()
        assert (job.state, job.done, job.succeeded) == ("running", 2, 2)
        assert "2 of 3 deliveries have an outcome" in job_page(client, job)

        send_claimed(target, claimed, trigger=Attempt.Trigger.SCHEDULED)
        assert bulk_resend_step(job.pk) is None
        received = [request.headers["webhook-id"] for request in receiver.requests]

    assert sorted(received) == sorted(delivery.message_id for delivery in (first, second, third))
    job.refresh_from_db()
    assert (job.state, job.done, job.succeeded) == ("done", 3, 3)
    assert "3 delivered (1 by the job, 2 meanwhile by retries)." in job_page(client, job)


def test_what_the_job_can_no_longer_send_is_skipped_with_the_reason_and_the_job_ends(client, director, env):
    with Receiver(default=Answer(status=503)) as receiver:
        webhook = make_webhook(env, receiver.url)
        fails, erased, delivered, *in_flight = seed(webhook, ["failed"] * 5)
        job = recover(client, webhook)
        Delivery.objects.filter(pk=erased.pk).update(payload_erased_at=timezone.now())
        # A retry that began before the job was asked for got through just before it.
        Delivery.objects.filter(pk=delivered.pk).update(
            status="succeeded", delivered_at=job.created_at - datetime.timedelta(seconds=1)
        )
        for delivery in in_flight:
            ledger.claim(
                owner="another worker", now=timezone.now(), env_cap=64, margin=30, delivery_id=delivery.pk, manual=True
            )
        assert bulk_resend_step(job.pk) == POLL_SECONDS
        # The other worker gives up its leases, and someone pauses the webhook before the job sends them.
        Delivery.objects.filter(pk__in=[delivery.pk for delivery in in_flight]).update(
            leased_until=None, lease_owner=""
        )
        pause_webhook(webhook)
        assert bulk_resend_step(job.pk) is None
        received = [request.headers["webhook-id"] for request in receiver.requests]

    assert received == [fails.message_id]
    job.refresh_from_db()
    assert (job.state, job.done, job.succeeded) == ("done", 5, 0)
    outcomes = Outcomes.of(job)
    assert outcomes.skipped_reasons == [
        ("already delivered before the job", 1),
        ("payload erased", 1),
        ("webhook paused", 2),
    ]
    page = job_page(client, job)
    skipped = "4 skipped (1 already delivered before the job, 1 payload erased, 2 webhook paused)"
    assert f"0 delivered; 1 failed again; {skipped}." in page
    assert "<li>2 webhook paused</li>" in page


def test_the_recover_form_offers_the_event_types_to_choose_from_and_refuses_any_other(client, director, env):
    webhook = make_webhook(env, "http://127.0.0.1:9999/hooks", event_types=["patients.created"])
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert '<select name="event_type" id="id_event_type">' in page
    assert '<option value="" selected>All event types</option>' in page
    assert '<option value="patients.created">patients.created</option>' in page

    response = client.post(
        f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"status": "recover", "event_type": "patients.exploded"}
    )
    page = client.get(response.url).content.decode()
    assert "Nothing was re-sent. Event type: Select a valid choice. patients.exploded is not one of the" in page
    assert not BulkResend.objects.exists()


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1440])
def test_a_recovery_is_started_with_the_keyboard_and_its_page_shows_the_outcomes(page, env, width):
    from environments.tests.browser import log_in
    from environments.tests.factories import grant, make_user

    grant(make_user("dana"), env)
    report_in("worker-1")  # a worker runs: the job is carried out here, as a worker would
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, name="EHR bridge")
        seed(webhook, ["failed", "retrying"])
        page.set_viewport_size({"width": width, "height": 900})
        log_in(page, "dana")
        page.goto(f"/e/clinic/webhooks/{webhook.pk}/#recover")
        event_type = page.get_by_label("Event type")
        assert event_type.locator("option").all_inner_texts()[0] == "All event types"
        event_type.select_option("patients.created")
        page.get_by_role("button", name="Recover…").focus()
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Re-send 2 deliveries").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/recoveries/*/")
        assert "0 of 2 deliveries have an outcome" in page.locator("#progress").inner_text()
        assert "refreshes every few seconds" in page.locator("#progress").inner_text()

        job = BulkResend.objects.get()
        while bulk_resend_step(job.pk) is not None:
            pass
        page.reload()
        assert "Done: 2 of 2 deliveries have an outcome" in page.locator("#progress").inner_text()
        assert "2 delivered by the job." in page.locator("#summary").inner_text()
        assert "Delivered by the job\n2" in page.locator("#outcomes").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        assert len(receiver.requests) == 2
    assert not page.console_errors
