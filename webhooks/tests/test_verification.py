"""Endpoint verification: deliveries are held until the receiver answers a signed challenge, then sent in order."""

import json
import threading

import pytest

from conftest import WORKER_TEST_ENV, manage_py, wait_for
from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import grant, log_in_director, make_environment, make_user
from environments.workers import report_in
from webhooks import verification
from webhooks.carry_out import ask_verification_left_over
from webhooks.configure import fields_of, update_webhook
from webhooks.delivery.sending import attempt_delivery, drain
from webhooks.models import ManualSend, Webhook
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def answering_the_challenge(body: bytes, headers: dict) -> Answer:
    event = json.loads(body)
    if event["type"] == "webhook.verification":
        return Answer(status=200, body=json.dumps({"challenge": event["data"]["challenge"]}).encode())
    return Answer(status=204, body=b"")


def produce(environment, count: int) -> None:
    for number in range(count):
        create_record(environment, "patients", {"first_name": f"Patient {number}", "last_name": "X"})


@pytest.fixture
def live():
    return make_environment("ward", kind="live")


def test_a_live_webhook_holds_deliveries_until_verified_then_sends_them_in_order(live):
    with Receiver(judge=answering_the_challenge) as receiver:
        webhook = make_webhook(live, receiver.url)
        assert webhook.state == Webhook.State.UNVERIFIED
        produce(live, 3)
        assert attempt_delivery(webhook.deliveries.order_by("id").first().pk) is None  # held, not sent
        assert receiver.requests == []

        outcome = carried_out(verification.verify(webhook))
        assert outcome.passed and outcome.result == "the receiver answered 200 with the challenge"
        webhook.refresh_from_db()
        assert webhook.state == Webhook.State.ACTIVE and webhook.verified_at is not None
        drain(webhook.pk)
    kinds = [json.loads(request.body)["type"] for request in receiver.requests]
    assert kinds == ["webhook.verification", "patients.created", "patients.created", "patients.created"]
    names = [json.loads(request.body)["data"]["fields"]["first_name"] for request in receiver.requests[1:]]
    assert names == ["Patient 0", "Patient 1", "Patient 2"]  # oldest first
    assert receiver.requests[0].headers["webhook-signature"].startswith("v1,")  # the challenge is signed
    assert AuditEvent.objects.filter(action="webhook.verified", target_id=str(webhook.pk)).exists()


def test_a_receiver_that_does_not_echo_the_challenge_stays_unverified(live):
    with Receiver() as receiver:  # answers 200 "ok" to anything
        webhook = make_webhook(live, receiver.url)
        produce(live, 1)
        outcome = carried_out(verification.verify(webhook))
    assert not outcome.passed
    assert outcome.result == (
        'the receiver answered 200 but not with the challenge on its own (the whole body, or {"challenge": "…"})'
    )
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.UNVERIFIED
    assert webhook.deliveries.filter(is_test=False, status="pending").count() == 1
    assert AuditEvent.objects.filter(action="webhook.verification_failed").exists()


def test_a_changed_url_must_be_verified_again(live):
    with Receiver(judge=answering_the_challenge) as first, Receiver() as second:
        webhook = make_webhook(live, first.url)
        carried_out(verification.verify(webhook))
        webhook.refresh_from_db()
        fields = fields_of(webhook)
        fields.url = second.url
        update_webhook(webhook, fields)
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.UNVERIFIED and webhook.verified_at is None


def test_a_challenge_answered_after_the_url_changed_does_not_verify_the_new_url(live):
    def slowly_answering_the_challenge(body: bytes, headers: dict) -> Answer:
        answer = answering_the_challenge(body, headers)
        answer.delay = 1.5  # the URL is changed while this answer is on its way
        return answer

    with Receiver(judge=slowly_answering_the_challenge) as first, Receiver() as second:
        webhook = make_webhook(live, first.url)
        asked = verification.verify(webhook)
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(send=carried_out(asked)))
        worker.start()
        wait_for(lambda: first.requests or None, timeout=10, interval=0.05, message="the challenge at the first URL")
        fields = fields_of(webhook)
        fields.url = second.url  # a receiver that never answers challenges
        update_webhook(webhook, fields)
        worker.join(timeout=30)
    webhook.refresh_from_db()
    assert outcome["send"].passed is False and outcome["send"].result.startswith("superseded")
    assert webhook.url == second.url
    assert webhook.state == Webhook.State.UNVERIFIED and webhook.verified_at is None


def test_only_an_admin_waives_verification_with_a_reason(live, client):
    with Receiver() as receiver:
        webhook = make_webhook(live, receiver.url)
    log_in_director(client, live)
    assert client.post(f"/e/ward/webhooks/{webhook.pk}/waive-verification/", {"reason": "x"}).status_code == 403
    client.force_login(make_user("root", admin=True))
    refused = client.post(f"/e/ward/webhooks/{webhook.pk}/waive-verification/", {"reason": " "}, follow=True)
    assert "Nothing was changed: Say why verification is waived" in refused.content.decode()
    client.post(f"/e/ward/webhooks/{webhook.pk}/waive-verification/", {"reason": "receiver behind a gateway"})
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.ACTIVE and webhook.verification_waived == "receiver behind a gateway"
    waived = AuditEvent.objects.get(action="webhook.verification_waived")
    assert waived.details["reason"] == "receiver behind a gateway" and waived.actor_label == "root"


def test_test_environments_do_not_require_it_by_default(settings):
    environment = make_environment("clinic")
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
    assert webhook.state == Webhook.State.ACTIVE
    settings.WEBHOOK_VERIFICATION_REQUIRED_KINDS = ["live", "test"]
    with Receiver() as receiver:
        assert make_webhook(environment, receiver.url).state == Webhook.State.UNVERIFIED


def echoing(body: bytes, headers: dict) -> Answer:
    return Answer(status=200, body=body)


def test_a_receiver_that_echoes_the_request_back_does_not_pass(live):
    with Receiver(judge=echoing) as receiver:
        webhook = make_webhook(live, receiver.url)
        outcome = carried_out(verification.verify(webhook))
        echoed = receiver.requests[-1].body
    assert json.loads(echoed)["data"]["challenge"] == outcome.challenge  # the challenge was in the body it got back
    assert not outcome.passed
    assert outcome.result.startswith("the receiver answered 200 but not with the challenge on its own")
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.UNVERIFIED and webhook.verified_at is None


@pytest.mark.parametrize(
    ("answer", "passes"),
    [
        ("{challenge}", True),
        ("{challenge}\n", True),
        ('{{"challenge": "{challenge}"}}', True),
        ('{{"challenge": "{challenge}", "status": "ok"}}', True),
        ("ok {challenge}", False),
        ('{{"data": {{"challenge": "{challenge}"}}}}', False),
        ('["{challenge}"]', False),
        ('{{"challenge": "{challenge}x"}}', False),
    ],
)
def test_only_the_challenge_on_its_own_answers_it(answer, passes):
    challenge = "q1W2e3R4"
    assert verification.answers_challenge(answer.format(challenge=challenge), challenge) is passes


def test_the_command_waits_for_the_worker_and_exits_1_when_the_receiver_fails(live, celery_worker_process):
    with Receiver() as receiver:
        webhook = make_webhook(live, receiver.url)
        done = manage_py("verify_webhook", str(webhook.pk), "--json", **WORKER_TEST_ENV)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["verified"] is False
    assert json.loads(done.stdout)["state"] == "unverified"


def test_the_page_right_after_creating_a_live_webhook_says_it_is_verifying(live, client, settings):
    settings.WEBHOOK_ALLOW_HTTP, settings.WEBHOOK_ALLOWED_NETWORKS = True, ["127.0.0.1/32"]
    report_in("worker-1")  # a worker runs (none is started: the page right after creating is what is read)
    log_in_director(client, live)
    with Receiver(judge=answering_the_challenge) as receiver:
        form = {
            "name": "Ward feed",
            "url": receiver.url,
            "event_types": ["patients.created"],
            "security_method": "ed25519",
            "verify_tls": "on",
            "payload_format": "full",
            "max_events_per_request": "1",
            "timeout_seconds": "5",
        }
        created = client.post("/e/ward/webhooks/new/", form)
        webhook = Webhook.objects.get(name="Ward feed")
        page = client.get(created["Location"]).content.decode()
        carried_out(ManualSend.objects.get(webhook=webhook, kind="verification"))
        after = client.get(created["Location"]).content.decode()
    assert "Not tried yet" not in page
    assert "Verifying now." in page and "The URL verification challenge went to a background worker" in page
    assert "✓ verified" not in page
    assert "active" in after and "Unverified:" not in after and "Not tried yet" not in after


def test_an_unverified_webhook_offers_verify_now_not_an_enable_button_that_refuses(live, client):
    log_in_director(client, live)
    with Receiver() as receiver:
        webhook = make_webhook(live, receiver.url)
    page = client.get(f"/e/ward/webhooks/{webhook.pk}/").content.decode()
    assert ">Verify now</button>" in page
    assert ">Enable</button>" not in page and "<h2>Enable</h2>" not in page


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1440])
def test_verify_now_in_the_browser(page, live, width, start_worker):
    start_worker()
    grant(make_user("dana"), live)
    # The receiver is not ready at first: the challenge sent when the webhook is created fails, so the
    # page is still unverified when Dana opens it (however fast the worker is), and Verify now is what passes.
    ready = threading.Event()

    def once_ready(body: bytes, headers: dict) -> Answer:
        return answering_the_challenge(body, headers) if ready.is_set() else Answer(status=503)

    with Receiver(judge=once_ready) as receiver:
        webhook = make_webhook(live, receiver.url, name="Ward feed")
        wait_for(
            lambda: ManualSend.objects.filter(webhook=webhook, finished_at__isnull=False).exists(),
            timeout=30,
            message="the first challenge to fail",
        )
        produce(live, 1)
        page.set_viewport_size({"width": width, "height": 900})
        log_in(page, "dana")
        page.goto(f"/e/ward/webhooks/{webhook.pk}/")
        assert "unverified" in page.get_by_role("heading", level=1).inner_text()
        assert "Unverified:" in page.locator("#verification").inner_text()
        ready.set()
        page.get_by_role("button", name="Verify now").click()
        result = page.locator(".verification-result", has_text="✓ verified")
        result.wait_for(timeout=30_000)  # the page refreshes itself until the worker's answer is in
        assert "The receiver answered 200 with the challenge." in result.inner_text()
        assert "active" in page.get_by_role("heading", level=1).inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.console_errors


def test_a_verification_queued_by_an_earlier_version_is_asked_again_once(live):
    with Receiver(judge=answering_the_challenge) as receiver:
        webhook = make_webhook(live, receiver.url)
        ManualSend.objects.filter(webhook=webhook).delete()  # as an earlier version left it: a bare task only
        asked = ask_verification_left_over(webhook.pk)
        assert ask_verification_left_over(webhook.pk) is None  # one waits already: not asked twice
        carried_out(asked)
        webhook.refresh_from_db()
        assert webhook.state == Webhook.State.ACTIVE
        assert ask_verification_left_over(webhook.pk) is None  # verified: nothing to ask
    assert len(receiver.requests) == 1
