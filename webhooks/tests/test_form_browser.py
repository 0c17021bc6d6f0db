"""The webhook form in a real browser at both widths: grouped event types, fields that apply, errors that lead,
and how it sends said back on the webhook's page."""

import re

import pytest

from credentials.tests.factories import make_client, make_credential
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def described_by_missing(page) -> list[str]:
    """Ids that an aria-describedby names but the page does not have."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby]')]
            .flatMap(el => el.getAttribute('aria-describedby').split(/\\s+/))
            .filter(id => id && !document.getElementById(id))"""
    )


@pytest.mark.parametrize("width", [390, 1440])
def test_the_webhook_form_groups_types_shows_what_applies_and_leads_to_errors(page, width, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment("clinic")
    grant(make_user("dana"), environment)
    make_credential(make_client(environment, name="Lab importer"), name="Primary")
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, "dana")
    page.goto("/e/clinic/webhooks/new/")

    patients = page.locator("#id_event_types fieldset.event-type-group", has_text="Patients")
    patients.get_by_role("button", name="Select all Patients").click()
    assert patients.locator("input:checked").count() == 3
    patients.locator("summary", has_text="Example payload").first.click()
    assert '"type": "patients.created"' in patients.locator("pre").first.inner_text()

    credentials = page.locator("#id_signing_credentials_field")
    assert not credentials.is_visible()  # the signing-secret method is chosen
    page.get_by_label("Credentials", exact=True).check()
    assert credentials.is_visible()
    page.get_by_label("Signing secret").check()

    long_url = "https://example.org/hook?" + "a" * 2100
    page.get_by_label("URL").fill(long_url)
    assert page.get_by_label("URL").input_value() == long_url  # never cut short in the browser
    page.get_by_role("button", name="Save").click()
    summary = page.locator(".error-summary")
    assert page.evaluate("document.activeElement.classList.contains('error-summary')")
    assert "Name: This field is required." in summary.inner_text()
    assert "URL: Ensure this value has at most 2000 characters (it has 2125)." in summary.inner_text()
    summary.get_by_role("link", name="URL:").click()
    assert page.evaluate("document.activeElement.id") == "id_url"
    assert described_by_missing(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    # How it sends: grouped under its own heading, each option with its help; the webhook's page says it back.
    assert page.get_by_role("heading", name="How it sends").is_visible()
    assert "one record's changes one at a time" in page.locator("#id_ordering_helptext").inner_text()
    page.get_by_role("textbox", name="Name").fill("EHR")
    page.get_by_label("URL").fill("http://127.0.0.1:8009/hook")
    page.get_by_label("Order of delivery").select_option("record")
    page.get_by_label("Maximum requests per second").fill("0")
    page.get_by_role("button", name="Save").click()
    assert "Maximum requests per second: Ensure this value is greater than or equal to 0.01." in (
        page.locator(".error-summary").inner_text()
    )
    page.get_by_label("Maximum requests per second").fill("10")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/webhooks/[0-9]+/secret/"))
    page.goto(page.url.partition("secret/")[0])
    assert page.locator(".sending-policy").inner_text() == "In order per record, at most 4 at a time, 10/s"
    assert page.get_by_role("heading", name="Held lines").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not page.console_errors
