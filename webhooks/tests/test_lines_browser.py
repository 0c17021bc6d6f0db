"""Held lines in a real browser at a phone's and a desktop's width: read what holds a line, give up on it."""

import datetime

import pytest
from django.utils import timezone

from environments.models import Record
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from webhooks.models import Delivery
from webhooks.tests.factories import make_delivery, make_webhook

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1440])
def test_a_held_line_is_read_and_released_by_giving_up_on_its_head(page, width, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment("clinic")
    grant(make_user("dana"), environment)
    webhook = make_webhook(environment, "http://127.0.0.1:8009/hook", name="EHR bridge", ordering="record")
    ada = Record.objects.create(environment=environment, data_type="patients", external_id="P-0042", data={})
    head = make_delivery(
        webhook,
        record_id=ada.pk,
        status=Delivery.Status.RETRYING,
        attempt_count=4,
        last_status_code=500,
        next_attempt_at=timezone.now() + datetime.timedelta(hours=2),
    )
    for _ in range(2):
        make_delivery(webhook, record_id=ada.pk, status=Delivery.Status.PENDING)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto(f"/e/clinic/webhooks/{webhook.pk}/")

    line = page.locator(".held-line")
    assert "patients/P-0042 waits behind delivery" in line.inner_text()
    assert "2 later changes wait behind it." in line.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    line.get_by_role("button", name="Give up on it…").click()

    assert "The receiver will never get this change of patients/P-0042" in page.locator("main").inner_text()
    page.get_by_role("button", name="Discard it").click()

    assert f"{head.message_id} is discarded" in page.locator(".messages").inner_text()
    assert "No line is held" in page.locator("#held-lines").inner_text()
    head.refresh_from_db()
    assert head.status == Delivery.Status.DISCARDED
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.console_errors
