"""The Overview in a real browser, at a phone's and a desktop's width: the failing badge and the hourly chart."""

import pytest

from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from environments.workers import report_in
from webhooks.delivery.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def deliver(webhook, times: int) -> None:
    for _ in range(times):
        create_record(webhook.environment, "patients", ADA)
        attempt_delivery(webhook.deliveries.order_by("-id").first().pk)


@pytest.mark.parametrize("width", [390, 1440])
def test_the_failing_badge_comes_and_goes_and_the_chart_has_one_bar_per_hour(page, width):
    environment = make_environment("clinic")
    report_in("worker-1")  # the deliveries below are made here, as a running worker would make them
    user = make_user("director")
    grant(user, environment)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "director")

    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url, name="EHR bridge")
        deliver(webhook, 3)
        receiver.answer(503)
        deliver(webhook, 1)

        page.goto("/e/clinic/")
        card = page.locator("article", has_text="EHR bridge")
        assert "⚠ failing" in page.locator("#attention-heading + ul").inner_text()
        assert "⚠ failing" in card.inner_text()
        hours = card.locator("svg g.hour")
        assert hours.count() == 24
        assert ": 3 received, 1 failed" in hours.last.locator("title").text_content()
        assert card.locator("rect.bar-bad").last.get_attribute("height") != "0.0"
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        deliver(webhook, 1)  # the receiver is back
        page.reload()
        assert "all clear" in page.locator("#attention-heading + p").inner_text()
        assert "⚠ failing" not in page.locator("article", has_text="EHR bridge").inner_text()
        assert ": 4 received, 1 failed" in page.locator("article svg g.hour title").last.text_content()
    assert not page.console_errors
