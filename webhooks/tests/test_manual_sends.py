"""Sends asked for by hand (a test delivery, the signature self-test, URL verification, a re-send) run in the
worker: a receiver that hangs holds no web worker, and a busy webhook lock is neither a 500 nor a delivery left
pending for ever."""

import statistics
import threading
import time

import pytest
import requests

from conftest import gunicorn_serving, log_in_over_http, wait_for
from credentials.tests.factories import make_client, make_credential
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import PASSWORD, grant, make_user
from integration_tools.celery import app
from portal.actor import Actor
from webhooks.carry_out import carry_out
from webhooks.delivery.sending import attempt_delivery
from webhooks.manual import resend
from webhooks.models import Attempt, Delivery, ManualSend
from webhooks.tests.factories import make_webhook
from webhooks.tests.locks import claim_lock_held_elsewhere
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)
PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def failed_for_good(env, receiver) -> Delivery:
    """A delivery whose receiver answered 500 and that waits for nothing more (a re-send is all that sends it)."""
    receiver.answer(500)
    create_record(env, "patients", PATIENT)
    delivery = Delivery.objects.get(is_test=False)
    attempt_delivery(delivery.pk)
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.FAILED, next_attempt_at=None)
    return delivery


def test_a_send_whose_webhook_lock_is_busy_is_put_back_not_refused_and_goes_once_it_is_free(env, client, director):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        with claim_lock_held_elsewhere(webhook):
            asked = client.post(f"/e/clinic/webhooks/{webhook.pk}/test/")
            send = ManualSend.objects.get()
            assert carry_out(send.pk) is None  # the lock stayed busy past its wait: put back, not failed
            send.refresh_from_db()
            assert send.finished_at is None and send.leased_until is None and send.enqueued_at > send.requested_at
            assert receiver.requests == []
        done = carry_out(send.pk)
    assert asked.status_code == 302
    assert done.attempt.succeeded and len(receiver.requests) == 1
    assert Delivery.objects.get(pk=send.delivery_id).status == Delivery.Status.SUCCEEDED


def test_a_test_send_and_a_re_send_made_while_the_webhooks_lock_is_busy_are_sent_by_the_worker_once_it_is_free(
    env, client, director, start_worker
):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        delivery = failed_for_good(env, receiver)
        start_worker()
        with claim_lock_held_elsewhere(webhook):
            tested = client.post(f"/e/clinic/webhooks/{webhook.pk}/test/")
            resent = client.post(f"/e/clinic/deliveries/{delivery.pk}/resend/")
            # The worker tries each, finds the lock busy and puts it back to try again a second later.
            wait_for(
                lambda: all(send.enqueued_at > send.requested_at for send in ManualSend.objects.all()),
                timeout=30,
                message="the worker to find the lock busy and put both sends back",
            )
            assert len(receiver.requests) == 1  # only the first, failed attempt: nothing while the lock is held
        wait_for(
            lambda: ManualSend.objects.filter(finished_at__isnull=False).count() == 2,
            timeout=30,
            message="both sends to go once the lock is free",
        )
    assert (tested.status_code, resent.status_code) == (302, 302)
    test_send = ManualSend.objects.get(kind="test")
    resend = ManualSend.objects.get(kind="resend")
    assert test_send.attempt.succeeded and test_send.passed
    assert resend.attempt.trigger == Attempt.Trigger.RESEND and resend.attempt.succeeded
    assert len(receiver.requests) == 3
    assert not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()


def test_a_test_send_whose_task_was_lost_is_still_sent(env, client, director, start_worker):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        client.post(f"/e/clinic/webhooks/{webhook.pk}/test/")
        app.control.purge()  # the task is lost (a flushed broker, a worker killed with it)
        start_worker()  # its beat sweeps every second and queues again sends left unfinished
        send = wait_for(
            lambda: ManualSend.objects.filter(finished_at__isnull=False).first(),
            timeout=60,
            message="the sweeper to queue the send again and a worker to send it",
        )
    assert send.attempt.succeeded and len(receiver.requests) == 1


# --- A hanging receiver and the web tier ------------------------------------------------------------------


@pytest.fixture
def portal_under_gunicorn(transactional_db, tmp_path):
    """The portal served by gunicorn with 2 sync workers and its 30 s worker timeout, as in production."""
    with gunicorn_serving(["--workers", "2", "--timeout", "30"], tmp_path / "gunicorn.log") as url:
        yield url


# How long the receiver hangs: the webhook's whole timeout.
HANG_SECONDS = 10


def test_two_test_sends_to_a_hanging_receiver_leave_the_token_endpoints_latency_unchanged(
    env, portal_under_gunicorn, celery_worker_process
):
    portal = portal_under_gunicorn
    app = make_client(env)
    _, secret = make_credential(app)
    grant(make_user("dana"), env)

    with Receiver(default=Answer(delay=HANG_SECONDS + 5)) as receiver:
        webhook = make_webhook(env, receiver.url, timeout_seconds=HANG_SECONDS)
        session = log_in_over_http(portal, "dana", PASSWORD)
        before = [_token_seconds(portal, app, secret) for _ in range(5)]
        answers: list[tuple[int, float]] = []
        senders = [threading.Thread(target=_send_test, args=(portal, session, webhook, answers)) for _ in range(2)]
        for sender in senders:
            sender.start()
        # Both requests have reached the receiver, which now hangs on them.
        wait_for(lambda: len(receiver.requests) == 2, timeout=30, message="both test sends to reach the receiver")
        hanging_since = time.monotonic()
        during = [_token_seconds(portal, app, secret) for _ in range(5)]
        assert time.monotonic() - hanging_since < HANG_SECONDS, "measured while the receiver still hung"
        for sender in senders:
            sender.join(timeout=HANG_SECONDS + 30)
        wait_for(
            lambda: ManualSend.objects.filter(finished_at__isnull=False).count() == 2,
            timeout=HANG_SECONDS + 30,
            message="the worker to record both timeouts",
        )
    print(
        f"token endpoint: median {statistics.median(before) * 1000:.0f} ms before, "
        f"{statistics.median(during) * 1000:.0f} ms (max {max(during) * 1000:.0f} ms) while two test sends hung; "
        f"the two test sends answered in {', '.join(f'{seconds * 1000:.0f} ms' for _, seconds in answers)}"
    )
    assert [status for status, _ in answers] == [302, 302]
    # The web requests only asked (a worker waits on the receiver): answered long before its hang ended.
    assert max(seconds for _, seconds in answers) < HANG_SECONDS / 2
    # Before, each test send held a gunicorn worker for the receiver's whole hang: tokens waited as long.
    assert max(during) < 1.0
    results = ManualSend.objects.filter(kind="test").select_related("attempt")
    assert {send.attempt.error for send in results} == {"timeout"}


def _token_seconds(portal: str, app, secret: str) -> float:
    """How long the token endpoint takes to give `app` a token (which it must)."""
    started = time.monotonic()
    answer = requests.post(
        f"{portal}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(app.client_id, secret),
        timeout=HANG_SECONDS + 25,
    )
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started


def _send_test(portal: str, session, webhook, answers: list) -> None:
    """Press "Send test" over HTTP; its status and how long the portal took to answer, into `answers`."""
    started = time.monotonic()
    answer = session.post(
        f"{portal}/e/clinic/webhooks/{webhook.pk}/test/",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{portal}/e/clinic/webhooks/{webhook.pk}/"},
        allow_redirects=False,
        timeout=HANG_SECONDS + 25,
    )
    answers.append((answer.status_code, time.monotonic() - started))


# --- In a browser, with and without JavaScript ------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1440])
def test_without_javascript_the_reload_link_shows_the_result_under_its_button(
    chromium, live_server, env, start_worker, width
):
    grant(make_user("dana"), env)
    context = chromium.new_context(base_url=live_server.url, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        with Receiver() as receiver:
            receiver.answer(202, body=b"thanks")
            webhook = make_webhook(env, receiver.url, name="Ward feed")
            page.set_viewport_size({"width": width, "height": 900})
            log_in(page, "dana")
            page.goto(f"/e/clinic/webhooks/{webhook.pk}/#testing")
            page.get_by_role("button", name="Send test delivery").click()
            pending = page.locator(".test-result")
            # No worker runs yet: the page says the send waits for one, instead of "Sending…".
            assert "no background worker is running, so it is not happening yet" in pending.inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            start_worker()
            wait_for(
                lambda: ManualSend.objects.filter(finished_at__isnull=False).exists(), timeout=60, message="the worker"
            )
            pending.get_by_role("link", name="Reload to see the result").click()
            result = page.locator(".test-result")
            assert "202 received" in result.inner_text() and "thanks" in result.inner_text()
            # Under the Send test button it belongs to, above the signature self-test.
            testing = page.locator("#testing")
            headings = testing.locator("h3, .test-result").all_inner_texts()
            assert "202 received" in headings[0] and headings[1] == "Signature self-test"
            assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        context.close()


def test_a_re_send_waiting_for_a_worker_is_not_sent_once_its_webhook_was_paused_meanwhile(env, client, director):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        delivery = failed_for_good(env, receiver)
        client.post(f"/e/clinic/deliveries/{delivery.pk}/resend/")
        send = ManualSend.objects.get(kind=ManualSend.Kind.RESEND)
        # Before a worker takes the re-send, the Program Director pauses the webhook: rule 5, nothing is sent.
        client.post(f"/e/clinic/webhooks/{webhook.pk}/pause/")
        done = carry_out(send.pk)

    assert len(receiver.requests) == 1  # only the first, failed attempt
    assert done.finished_at is not None and done.passed is False
    assert done.result == f"not sent: {webhook.name} was paused before a worker could send it"
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.FAILED


def test_a_re_send_does_not_take_someone_elses_re_send_of_the_same_delivery_as_its_result(env, client, director):
    with Receiver() as receiver:
        make_webhook(env, receiver.url)
        delivery = failed_for_good(env, receiver)
        client.post(f"/e/clinic/deliveries/{delivery.pk}/resend/")
        first = ManualSend.objects.get(kind=ManualSend.Kind.RESEND)
        resend(delivery, actor=Actor.for_task("ops-script"))
        second = ManualSend.objects.exclude(pk=first.pk).get(kind=ManualSend.Kind.RESEND)
        carry_out(second.pk)
        carry_out(first.pk)

    assert len(receiver.requests) == 3  # the failed attempt, then each re-send its own request
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.attempt_id != second.attempt_id
