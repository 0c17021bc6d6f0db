"""The portal in a real headless Chromium: log in, move around, log out; roles hold in the browser too."""

import pytest

from environments.audit import record_audit
from environments.models import Grant
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from portal.actor import Actor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_logs_in_switches_environment_sees_each_page_and_logs_out(page):
    make_environment("sandbox-test")
    make_environment("sandbox-live", kind="live")
    make_user("root", admin=True)

    log_in(page, "root")
    page.wait_for_url("**/e/sandbox-test/")  # a first visit lands on Test, not Live
    assert page.get_by_role("heading", level=1).inner_text() == "Sandbox Test"

    # Arrow keys on the switcher only choose; the Switch button goes, keeping the section.
    page.get_by_role("link", name="Webhooks").click()
    page.get_by_label("Environment").focus()
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    assert page.url.endswith("/e/sandbox-test/webhooks/")
    page.get_by_label("Environment").select_option("sandbox-live")
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url("**/e/sandbox-live/webhooks/")
    assert page.get_by_role("heading", level=1).inner_text() == "Webhooks"

    for link, heading in [
        ("Overview", "Sandbox Live"),
        ("Credentials", "Credentials"),
        ("Webhooks", "Webhooks"),
        ("Delivery history", "Delivery history"),
        ("Audit log", "Audit log"),
        ("Configurations", "Configurations"),
    ]:
        page.get_by_role("navigation", name="Sections").get_by_role("link", name=link).click()
        assert page.get_by_role("heading", level=1).inner_text() == heading

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    page.goto("/e/sandbox-test/")
    assert "/login/" in page.url
    log_in(page, "root")
    page.wait_for_url("**/e/sandbox-live/")  # back where they worked last
    assert page.console_errors == []


def test_a_wrong_password_gets_a_clear_message(page):
    make_user("root", admin=True)
    page.goto("/login/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text() == "Your username and password did not match. Try again."


def test_a_viewer_sees_their_environment_but_cannot_reach_admin_pages(page):
    clinic = make_environment("clinic")
    make_environment("lab")
    viewer = make_user("vic")
    grant(viewer, clinic, Grant.Role.VIEWER)

    log_in(page, "vic")
    page.wait_for_url("**/e/clinic/")
    nav = page.get_by_role("navigation", name="Sections")
    assert nav.get_by_role("link", name="Configurations").count() == 0
    assert nav.get_by_role("link", name="Audit log").count() == 0

    response = page.goto("/configurations/")
    assert response.status == 403
    assert page.get_by_text("This page is for Admins.").is_visible()

    response = page.goto("/e/lab/")
    assert response.status == 404


def test_an_admin_publishes_a_draft_and_sees_a_precise_error_first(page):
    env = make_environment("clinic")
    make_user("root", admin=True)
    log_in(page, "root")

    page.goto(f"/configurations/{env.configuration.slug}/drafts/new/")
    page.get_by_label("Schema").fill('{"data_types": {"patients": {"fields": {"age": {"type": "int"}}}}}')
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/versions/2/")
    page.get_by_label("Clinic").check()
    page.get_by_role("button", name="Publish version 2").click()
    alert = page.get_by_role("alert").first.inner_text()
    assert 'Cannot publish: data type "workers": the built-in data type is missing' in alert

    env.refresh_from_db()
    assert env.published_version.number == 1


def test_the_audit_export_takes_the_filters_on_screen_even_before_they_are_applied(page):
    admin = make_user("root", admin=True)
    record_audit(Actor.for_user(admin), "user.created", target_label="Zoë …")
    record_audit(Actor.for_user(admin), "configuration.published", target_label="Other")
    log_in(page, "root")
    page.goto("/audit/")
    page.get_by_label("Action").fill("user.created")  # typed, not applied
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV of these filters").click()
    content = download.value.path().read_text(encoding="utf-8")
    assert content.startswith("\ufeff")  # spreadsheets read "Zoë …" as written
    assert "Zoë …" in content and "configuration.published" not in content


@pytest.mark.parametrize("width", [390, 1440])
def test_a_live_environment_is_marked_live_in_words_on_its_pages_and_on_organisation_pages(page, width):
    make_environment("sandbox-test")
    make_environment("sandbox-live", kind="live")
    make_user("root", admin=True)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root")

    page.goto("/e/sandbox-test/webhooks/")
    assert page.locator(".badge", has_text="Live").count() == 0

    for path in ["/e/sandbox-live/webhooks/", "/audit/"]:  # the audit log keeps the environment last worked in
        page.goto(path)
        switcher = page.locator("form.switcher")
        badge = switcher.get_by_text("Live", exact=True)
        assert badge.is_visible()
        assert switcher.get_by_label("Environment").input_value() == "sandbox-live"
        menu = page.get_by_role("navigation", name="Sections")
        if width == 390:
            menu.get_by_text("Menu: Sandbox Live").click()
        assert menu.locator(".nav-heading", has_text="Sandbox Live").get_by_text("Live", exact=True).is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
