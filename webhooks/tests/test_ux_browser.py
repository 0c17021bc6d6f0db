"""Portal UX in a real browser at a phone's and a desktop's width: the actions menu, a test that a reload does
not send again, a client's page, the audit trail in words, and a Viewer's pages without empty sections."""

import pytest

from credentials.tests.factories import make_client, make_credential
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from webhooks.delivery.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def clinic(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment("clinic")
    grant(make_user("dana"), environment)
    grant(make_user("vic"), environment, "viewer")
    return environment


@pytest.mark.parametrize("width", [390, 1440])
def test_send_test_from_the_actions_menu_and_a_reload_sends_nothing(page, clinic, width, celery_worker_process):
    with Receiver() as receiver:
        make_webhook(clinic, receiver.url, name="EHR bridge")
        page.set_viewport_size({"width": width, "height": 900})
        log_in(page, "dana")
        page.goto("/e/clinic/webhooks/")
        page.get_by_text("Actions for EHR bridge").click()
        menu = page.locator("details.actions-menu[open]")
        assert [item.strip() for item in menu.locator("li").all_inner_texts()] == [
            "Open",
            "Deliveries",
            "Edit",
            "Pause",
            "Send test",
            "Delete…",
        ]
        menu.get_by_role("button", name="Send test").click()
        page.wait_for_url("**#testing")
        # A worker sends it; the page refreshes itself until the result is in.
        page.locator(".test-result", has_text="200 received").wait_for(timeout=30_000)
        page.reload()
        assert "200 received" in page.locator(".test-result").inner_text()
        assert len(receiver.requests) == 1  # the reload showed the result again and sent nothing
        for section in ("Overview and health", "Testing", "Settings", "Signing", "Recover", "Danger zone"):
            assert page.get_by_role("navigation", name="On this page").get_by_role("link", name=section).is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.console_errors


@pytest.mark.parametrize("width", [390, 1440])
def test_a_client_is_disabled_from_its_page_and_the_audit_says_so_in_words(page, clinic, width):
    app = make_client(clinic, name="Lab importer")
    make_credential(app, name="Primary")
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto("/e/clinic/credentials/")
    page.get_by_role("link", name="Lab importer", exact=True).click()
    page.get_by_role("textbox", name="Name").fill("Lab results importer")
    page.get_by_role("button", name="Rename").click()
    assert "Renamed: “Lab results importer”" in page.locator(".messages").inner_text()
    page.get_by_role("button", name="Disable client and end its 0 tokens").click()
    assert "disabled" in page.get_by_role("heading", level=1).inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    page.goto("/audit/")
    renamed = page.locator("tr", has_text="client.renamed")
    assert "Lab importer → Lab results importer" in renamed.inner_text()
    assert not page.console_errors


@pytest.mark.parametrize("width", [390, 1440])
def test_a_viewer_meets_no_empty_heading_or_action_less_section(page, clinic, width):
    with Receiver() as receiver:
        webhook = make_webhook(clinic, receiver.url, name="EHR bridge")
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "vic")
    page.goto(f"/e/clinic/webhooks/{webhook.pk}/")
    page_text = page.locator("body").inner_text()
    assert "Organisation" not in page_text
    assert "Testing" not in page_text and "Danger zone" not in page_text and "Recover" not in page_text
    assert page.get_by_role("heading", name="Settings").is_visible()
    assert not page.console_errors


@pytest.mark.parametrize("width", [390, 1440])
def test_pause_and_retry_now_sit_in_one_row_with_the_other_actions(page, clinic, width):
    with Receiver() as receiver:
        receiver.answer(503)
        webhook = make_webhook(clinic, receiver.url, name="EHR bridge")
        create_record(clinic, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        attempt_delivery(webhook.deliveries.get().pk)  # fails: one delivery waits for its retry
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto(f"/e/clinic/webhooks/{webhook.pk}/")
    actions = page.locator("main .actions", has=page.get_by_role("button", name="Retry now"))
    boxes = [
        actions.get_by_role(role, name=name, exact=True).bounding_box()
        for role, name in [("link", "Delivery history"), ("link", "Edit"), ("button", "Pause"), ("button", "Retry now")]
    ]
    if width == 1440:
        assert len({round(box["y"]) for box in boxes}) == 1, boxes
    # On a phone the row may wrap, but only where the next action would not fit beside the one before it.
    right_edge = actions.bounding_box()["x"] + actions.bounding_box()["width"]
    for before, box in zip(boxes, boxes[1:], strict=False):
        if round(box["y"]) != round(before["y"]):
            assert before["x"] + before["width"] + box["width"] > right_edge, (before, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
