"""Every portal page at a phone's (390 px) and a desktop's (1440 px) width: nothing wider than the window.

The data is made to stress the layout: a 100-character webhook name, a URL near its 2,000-character
limit, a long minified payload, long client and credential names.
"""

import pytest

from credentials.tests.factories import make_client, make_credential
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import make_environment, make_user
from webhooks.delivery.sending import attempt_delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG_NAME = "Regional health information exchange bridge for the northern district laboratories and clin"[:100]


@pytest.fixture
def seeded(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment("clinic")
    make_user("root", admin=True)
    client = make_client(environment, name="Laboratory information system importer (north)")
    credential, _ = make_credential(client, name="Primary key for the laboratory importer")
    with Receiver() as receiver:
        receiver.answer(500, body=b"x" * 3000)
        long_url = receiver.url + "?" + "&".join(f"parameter{n}=value{n}" for n in range(90))
        webhook = make_webhook(environment, long_url, name=LONG_NAME)
        patient = {"first_name": "A" * 100, "last_name": "B" * 100, "email": "a" * 60 + "@example.org"}
        create_record(environment, "patients", patient)
        delivery = webhook.deliveries.get()
        attempt_delivery(delivery.pk)
    return {
        "environment": environment,
        "webhook": webhook,
        "delivery": delivery,
        "client": client,
        "credential": credential,
    }


def pages(seeded) -> list[str]:
    slug, webhook, delivery = "clinic", seeded["webhook"].pk, seeded["delivery"].pk
    client_id, credential = seeded["client"].client_id, seeded["credential"].pk
    configuration = seeded["environment"].configuration.slug
    return [
        f"/e/{slug}/",
        f"/e/{slug}/credentials/",
        f"/e/{slug}/credentials/access/",
        f"/e/{slug}/credentials/clients/new/",
        f"/e/{slug}/credentials/clients/{client_id}/",
        f"/e/{slug}/credentials/clients/{client_id}/new-credential/",
        f"/e/{slug}/credentials/{credential}/rename/",
        f"/e/{slug}/credentials/{credential}/invalidate/",
        f"/e/{slug}/credentials/{credential}/revoke-tokens/",
        f"/e/{slug}/credentials/clients/{client_id}/rotation/",
        f"/e/{slug}/webhooks/",
        f"/e/{slug}/webhooks/new/",
        f"/e/{slug}/webhooks/{webhook}/",
        f"/e/{slug}/webhooks/{webhook}/edit/",
        f"/e/{slug}/webhooks/{webhook}/delete/",
        f"/e/{slug}/webhooks/{webhook}/bulk-resend/",
        f"/e/{slug}/webhooks/{webhook}/deliveries/",
        f"/e/{slug}/deliveries/",
        f"/e/{slug}/deliveries/{delivery}/",
        f"/e/{slug}/deliveries/reconciliation/",
        f"/e/{slug}/deliveries/erase/?webhook={webhook}",
        f"/e/{slug}/deliveries/erase/?delivery=msg_{'x' * 36}",
        "/audit/",
        "/configurations/",
        "/configurations/new/",
        f"/configurations/{configuration}/",
        f"/configurations/{configuration}/versions/1/",
        f"/configurations/{configuration}/drafts/new/",
        "/environments/new/",
        "/notifications/",
        "/account/",
        "/no-such-page/",
    ]


# Table cells squeezed so narrow that their words break letter by letter: the page fits, but cannot be read.
CRUSHED_CELLS = """() => [...document.querySelectorAll('td')]
    .filter(td => td.innerText.trim().length > 3 && td.getBoundingClientRect().width < 56)
    .map(td => td.innerText.trim().slice(0, 20))"""

# Ids that an aria-describedby names but the page does not have: a screen reader would read nothing.
MISSING_DESCRIPTIONS = """() => [...document.querySelectorAll('[aria-describedby]')]
    .flatMap(el => el.getAttribute('aria-describedby').split(/\\s+/))
    .filter(id => id && !document.getElementById(id))"""


@pytest.mark.parametrize("width", [390, 1440])
def test_no_page_is_wider_than_the_window(page, seeded, width):
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root")
    too_wide = []
    for path in pages(seeded):
        page.goto(path)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            too_wide.append(f"{path} is {scroll_width} px wide")
        crushed = page.evaluate(CRUSHED_CELLS)
        if crushed:
            too_wide.append(f"{path} crushes table cells to a few letters a line: {crushed[:3]}")
        missing = page.evaluate(MISSING_DESCRIPTIONS)
        if missing:
            too_wide.append(f"{path} describes by ids it lacks: {missing}")
    assert too_wide == [], "\n".join(too_wide)
    assert not [error for error in page.console_errors if "404" not in error]


def test_on_a_phone_the_sections_fold_into_a_menu_and_on_a_desktop_they_stay_open(page, seeded):
    log_in(page, "root")
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto("/e/clinic/")
    sections = page.get_by_role("navigation", name="Sections")
    assert not sections.get_by_role("link", name="Webhooks").is_visible()
    sections.get_by_text("Menu: Clinic").click()
    sections.get_by_role("link", name="Webhooks").click()
    page.wait_for_url("**/e/clinic/webhooks/")

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto("/e/clinic/")
    assert not page.get_by_text("Menu: Clinic").is_visible()
    assert page.get_by_role("navigation", name="Sections").get_by_role("link", name="Webhooks").is_visible()


@pytest.mark.parametrize("width", [390, 1440])
def test_the_re_send_button_in_the_history_can_be_seen(page, seeded, width):
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root")
    page.goto("/e/clinic/deliveries/")
    button = page.get_by_role("button", name=f"Re-send delivery {seeded['delivery'].message_id}")
    button.scroll_into_view_if_needed()
    assert button.is_visible()
    colour, background = button.evaluate(
        """el => [getComputedStyle(el).color, getComputedStyle(el.closest('tr')).backgroundColor]"""
    )
    assert colour not in ("rgb(255, 255, 255)", background)  # white on a white row was invisible


# A name with no space to break at, as long as a webhook name may be, and a URL near the 2,000-character limit
# with no character a browser breaks a line at.
UNBROKEN_NAME = ("Laboratory_results_bridge_for_the_northern_district_clinics_and_the_regional_" * 2)[:100]


@pytest.fixture
def long_url(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment("clinic")
    make_user("root", admin=True)
    with Receiver() as receiver:
        url = (receiver.url + "?token=" + "abcdefghij" * 190)[:1900]
        webhook = make_webhook(environment, url, name=UNBROKEN_NAME)
        create_record(environment, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        delivery = webhook.deliveries.get()
        attempt_delivery(delivery.pk)
    return {"webhook": webhook, "delivery": delivery, "url": url}


@pytest.mark.parametrize("width", [390, 1440])
def test_a_1900_character_url_and_an_unbroken_name_widen_no_page_and_the_audit_cuts_the_url(page, long_url, width):
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root")
    webhook, delivery = long_url["webhook"].pk, long_url["delivery"].pk
    too_wide = []
    for path in [
        "/e/clinic/",
        "/audit/",
        "/e/clinic/webhooks/",
        f"/e/clinic/webhooks/{webhook}/",
        f"/e/clinic/webhooks/{webhook}/deliveries/",
        f"/e/clinic/deliveries/{delivery}/",
    ]:
        page.goto(path)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        if scroll_width > width:
            too_wide.append(f"{path} is {scroll_width} px wide")
        crushed = page.evaluate(CRUSHED_CELLS)
        if crushed:
            too_wide.append(f"{path} crushes table cells to a few letters a line: {crushed[:3]}")
    assert too_wide == [], "\n".join(too_wide)

    # The audit log shows the start of the URL on a line or two; the whole of it opens on demand.
    page.goto("/audit/")
    # The details are what is read: long names in the other columns do not squeeze them to a sliver.
    details_widths = page.evaluate(
        "() => [...document.querySelectorAll('table.audit tbody td:last-child')].map(td => td.offsetWidth)"
    )
    assert min(details_widths) >= 200, details_widths
    created = page.locator("tr", has_text="webhook.created")
    url_line = created.locator(".audit-details div", has=page.locator("dt", has_text="url"))
    assert long_url["url"] not in url_line.inner_text()
    assert url_line.bounding_box()["height"] < 100  # a few lines, not the dozens the whole URL fills
    url_line.get_by_text("show all 1900 characters").click()
    assert long_url["url"] in url_line.inner_text()
    # The cut name keeps its whole text for a pointer's tooltip.
    assert created.get_by_title(UNBROKEN_NAME).count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", [390, 1440])
def test_with_debug_on_a_missing_portal_page_is_the_portals_own_404_page_and_fits(page, settings, width):
    settings.DEBUG = True  # as under `make run`: Django would show its technical 404 page, wider than a phone
    make_environment("clinic")
    make_user("root", admin=True)
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "root")
    for path in ["/no-such-page/", "/e/no-such-environment/", "/e/clinic/webhooks/999999/"]:
        response = page.goto(path)
        assert response.status == 404
        assert page.get_by_role("heading", level=1).inner_text() == "Not found"
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
    api = page.request.get("/api/v1/no-such-endpoint/")
    assert api.status == 404 and api.json()["error"]["code"] == "not_found"
