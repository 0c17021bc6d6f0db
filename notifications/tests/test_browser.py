"""Notifications in a real browser at a phone's and a desktop's width, by keyboard."""

import pytest

from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from notifications.models import Kind
from notifications.outbox import scan

from .factories import make_failing_webhook

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1440])
def test_a_failing_webhook_is_counted_in_the_header_and_its_notice_leads_to_it(page, width, settings):
    settings.NOTIFY_FAILING_AFTER_MINUTES = 0
    environment = make_environment("clinic")
    grant(make_user("director"), environment)
    webhook = make_failing_webhook(environment, name="EHR bridge")
    scan()

    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "director")
    page.goto("/e/clinic/")
    header_link = page.get_by_role("link", name="Notifications 1 unread")
    assert header_link.is_visible()
    header_link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/notifications/")

    notice = page.locator("li.notice")
    assert "New" in notice.inner_text()  # not told by colour alone
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    notice.get_by_role("link", name="Webhook “EHR bridge” is failing (Clinic)").click()
    page.wait_for_url(f"**/e/clinic/webhooks/{webhook.pk}/")
    assert page.get_by_role("link", name="Notifications", exact=True).is_visible()  # nothing unread now

    page.goto("/notifications/")
    page.get_by_label(Kind.WEBHOOK_FAILING.label).uncheck()
    page.get_by_role("button", name="Save").click()
    assert "Saved" in page.locator(".messages").inner_text()
    assert not page.get_by_label(Kind.WEBHOOK_FAILING.label).is_checked()
    assert not page.console_errors
