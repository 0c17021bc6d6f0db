"""The event catalog on the portal, in a real headless Chromium at a phone's and a desktop's width."""

import pytest

from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [390, 1440])
def test_each_event_type_shows_its_json_schema_beside_its_example(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    env = make_environment("clinic")
    grant(make_user("dana"), env)
    log_in(page, "dana")
    page.goto("/e/clinic/webhooks/")
    assert "Version 1: it moves with each publish of the schema." in page.get_by_role("main").inner_text()
    page.get_by_text("patients.created", exact=True).first.click()
    example = page.get_by_role("region", name="Example body of patients.created")
    schema = page.get_by_role("region", name="JSON Schema of patients.created")
    assert '"type": "patients.created"' in example.inner_text()
    assert '"$schema": "https://json-schema.org/draft/2020-12/schema"' in schema.inner_text()
    assert '"const": "patients.created"' in schema.inner_text()
    beside = schema.bounding_box()["y"] < example.bounding_box()["y"] + 50
    assert beside == (width == 1440)  # side by side on a desktop, one above the other on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.console_errors == []
