"""Webhooks in a real browser: create, keep the secret, send a test, open the history, re-send a failed delivery."""

import pytest
from standardwebhooks import Webhook as StandardWebhook

from conftest import wait_for
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import make_environment, make_user
from webhooks.models import Delivery, Webhook
from webhooks.tests.receiver import Answer, Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_create_test_history_and_re_send_in_the_browser(page, celery_worker_process):
    env = make_environment("clinic")
    make_user("root", admin=True)
    log_in(page, "root")

    with Receiver() as receiver:
        receiver.answer(202, body=b"thanks")
        page.goto("/e/clinic/webhooks/")
        page.get_by_role("link", name="New webhook").click()
        page.get_by_role("textbox", name="Name", exact=True).fill("Care app")
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("patients.created").check()
        page.get_by_role("button", name="Save").click()

        assert page.get_by_role("alert").inner_text().startswith("Copy the signing secret now.")
        secret = page.locator("#signing-secret").inner_text()
        assert secret.startswith("whsec_")
        page.get_by_role("link", name="Done").click()

        page.get_by_role("button", name="Send test delivery").click()
        result = page.locator(".test-result", has_text="202 received")
        result.wait_for(timeout=30_000)  # a worker sends it; the page refreshes itself until the result is in
        assert "thanks" in result.inner_text()
        test_request = receiver.requests[0]
        assert StandardWebhook(secret).verify(test_request.body, test_request.headers)["type"] == "webhook.test"

        # A change the receiver fails to take (and its retries too, until it is fixed below).
        receiver.default = Answer(500, body=b"database down")
        create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        delivery = Delivery.objects.get(webhook=Webhook.objects.get(name="Care app"), is_test=False)
        wait_for(lambda: Delivery.objects.get(pk=delivery.pk).attempt_count, timeout=30, message="the first attempt")

        page.get_by_role("link", name="Delivery history").first.click()
        row = page.locator("tr", has_text="patients.created")
        assert "retrying" in row.inner_text() and "500" in row.inner_text()
        row.get_by_role("link", name=f"Open delivery {delivery.message_id}").click()
        assert "database down" in page.locator("main").inner_text()
        page.get_by_text("Request headers").click()
        assert f"webhook-id\t{delivery.message_id}" in page.locator("main").inner_text()

        receiver.default = Answer(200)
        page.get_by_role("button", name="Re-send").click()
        resent = page.locator(".resend-result", has_text="the receiver answered 200")
        resent.wait_for(timeout=30_000)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert receiver.requests[-1].headers["webhook-id"] == delivery.message_id
    assert page.console_errors == []
