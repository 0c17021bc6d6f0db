"""Rough edges of the portal's layout (issue 27), in a real headless Chromium at a phone's and a desktop's width."""

import pytest

from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from webhooks import manual
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def middle(box) -> float:
    return box["y"] + box["height"] / 2


@pytest.mark.parametrize("width", [390, 1440])
def test_a_checkbox_sits_on_its_labels_line_and_the_search_button_beside_its_input(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    env = make_environment("clinic")
    grant(make_user("dana"), env)
    make_webhook(env, "http://127.0.0.1:9201/a", name="Lab receiver")
    log_in(page, "dana")

    page.goto("/e/clinic/webhooks/new/")
    box = page.get_by_role("checkbox", name="Verify TLS certificates").bounding_box()
    label = page.locator("label", has_text="Verify TLS certificates").bounding_box()
    assert abs(middle(box) - middle(label)) < box["height"]  # one line, not one above the other
    assert label["x"] > box["x"]

    # "Fields in full payloads": while every field of a data type goes, its single fields are folded away,
    # so the keyboard passes two stops per data type (the box and the fold), not one per field.
    groups = page.locator("#id_payload_fields")
    reachable = "g => [...g.querySelectorAll('input, button, summary')].filter(e => e.checkVisibility()).length"
    assert groups.evaluate(reachable) == 2 * len(env.data_types)
    groups.get_by_text("Or only some fields of Patients").click()
    assert groups.get_by_label("first_name").first.is_visible()

    page.goto("/e/clinic/webhooks/")
    field = page.get_by_role("searchbox", name="Search").bounding_box()
    button = page.get_by_role("button", name="Search", exact=True).bounding_box()
    if width == 1440:  # side by side: their bottom edges line up
        assert abs((field["y"] + field["height"]) - (button["y"] + button["height"])) <= 2
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", [390, 1440])
def test_on_a_phone_webhooks_and_their_history_read_as_cards_not_a_table_scrolling_sideways(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    env = make_environment("clinic")
    grant(make_user("dana"), env)
    with Receiver() as receiver:
        webhook = make_webhook(env, f"{receiver.url}/a-long-path/for/the/receiver", name="Lab receiver")
        carried_out(manual.send_test(webhook))
    log_in(page, "dana")
    for path in ["/e/clinic/webhooks/", f"/e/clinic/webhooks/{webhook.pk}/deliveries/"]:
        page.goto(path)
        box = page.locator(".table-box").first
        assert box.evaluate("box => box.scrollWidth <= box.clientWidth"), path
        row = page.locator("table.cards tbody tr").first
        assert row.evaluate("row => getComputedStyle(row).display") == ("block" if width == 390 else "table-row")
        if width == 390:
            # Each value says what it is.
            url = row.locator('td[data-label="URL"]')
            assert url.evaluate("td => getComputedStyle(td, '::before').content") == '"URL: "'
