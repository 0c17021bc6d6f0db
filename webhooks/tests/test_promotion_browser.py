"""Promoting a working integration from Test to Live in a real headless Chromium, at a phone's and a desktop's width."""

import pytest

from environments.tests.browser import log_in
from environments.tests.factories import make_user
from webhooks.models import ManualSend, Webhook
from webhooks.tests.factories import carried_out
from webhooks.tests.promotion_data import answering_the_challenge, integration
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1440])
def test_a_director_reviews_the_draft_promotes_and_live_waits_for_the_receiver(page, width, test_and_live):
    page.set_viewport_size({"width": width, "height": 900})
    test, live = test_and_live
    make_user("root", admin=True)
    with Receiver(judge=answering_the_challenge) as receiver:
        source = integration(test, receiver.url)
        log_in(page, "root")
        page.goto("/e/test-clinic/webhooks/")
        page.get_by_role("link", name="Promote to another environment").click()
        page.get_by_label("Promote to").select_option(label="Live Clinic (Live)")
        page.get_by_label("Care receiver").check()
        page.get_by_role("button", name="Review the draft").click()
        draft = page.get_by_role("region", name="Draft: nothing is created yet").inner_text()
        assert "differs: event type visits.created does not exist there" in draft
        assert "Live Clinic requires verification" in draft
        assert not live.webhooks.exists()
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        page.get_by_role("button", name="Promote to Live Clinic").click()
        promoted = page.get_by_role("region", name="Promoted webhook Care receiver")
        secret = promoted.locator("dd code").first.inner_text()
        assert secret.startswith("whsec_") and secret != source.plain_secret
        assert "Unverified: nothing is sent until its receiver answers" in promoted.inner_text()
        webhook = live.webhooks.get()
        assert webhook.state == Webhook.State.UNVERIFIED
        assert webhook.event_types == ["patients.created", "patients.updated"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        carried_out(ManualSend.objects.get(webhook=webhook, kind=ManualSend.Kind.VERIFICATION))
    promoted.get_by_role("link", name="Open it in Live Clinic").click()
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.ACTIVE
    assert "unverified" not in page.get_by_role("heading", level=1).inner_text().lower()
    assert page.console_errors == []
