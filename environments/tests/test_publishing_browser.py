"""Drafts and publishing in a real headless Chromium, at a phone's and a desktop's width, with the keyboard."""

import json

import pytest

from environments.demo import DEMO_SCHEMA
from environments.records import create_record
from environments.tests.browser import log_in
from environments.tests.factories import make_environment, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fits(page, width: int) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("width", [390, 1440])
def test_a_draft_says_what_stops_it_and_a_breaking_publish_waits_for_a_confirmation(page, width):
    page.set_viewport_size({"width": width, "height": 900})
    env = make_environment("clinic")
    make_user("root", admin=True)
    for n in range(3):
        create_record(env, "patients", {"first_name": f"P{n}", "last_name": "S", "status": "discharged"})
    log_in(page, "root")

    _a_draft_missing_a_built_in_type_says_so(page, env, width)
    _a_check_on_demand_points_at_the_line_and_saves_nothing(page, width)
    _a_breaking_draft_is_described_in_words(page, width)
    _publishing_it_waits_for_a_confirmation_ticked_by_keyboard(page, width)
    env.refresh_from_db()
    assert env.published_version.number == 2
    assert page.console_errors == []


def _a_draft_missing_a_built_in_type_says_so(page, env, width: int) -> None:
    page.goto(f"/configurations/{env.configuration.slug}/drafts/new/")
    without_workers = {"data_types": {"patients": DEMO_SCHEMA["data_types"]["patients"]}}
    page.get_by_role("textbox", name="Schema").fill(json.dumps(without_workers))
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url("**/versions/2/")
    assert "cannot be published yet: 1 problem to fix" in page.get_by_role("status").inner_text()
    problems = page.get_by_role("region", name="This draft cannot be published yet")
    assert 'data type "workers": the built-in data type is missing' in problems.inner_text()
    assert fits(page, width)


def _a_check_on_demand_points_at_the_line_and_saves_nothing(page, width: int) -> None:
    # The editor: monospace, numbered lines; a check on demand points at the line and field, saving nothing.
    editor = page.get_by_role("textbox", name="Schema")
    assert "monospace" in editor.evaluate("area => getComputedStyle(area).fontFamily")
    with_bad_field = json.loads(json.dumps(DEMO_SCHEMA))
    with_bad_field["data_types"]["patients"]["fields"]["age"] = {"type": "int"}
    text = json.dumps(with_bad_field, indent=2)
    age_line = text[: text.index('"age"')].count("\n") + 1
    editor.fill(text)
    page.get_by_role("button", name="Check without saving").click()
    problems = page.get_by_role("region", name="This draft cannot be published yet")
    assert "Checked, not saved." in problems.inner_text()
    assert f'Line {age_line}: data type "patients", field "age": unknown type "int"' in problems.inner_text()
    assert f"! {age_line}" in page.locator(".editor .gutter").inner_text()
    problems.get_by_role("link", name=f"Line {age_line}").click()
    selected = editor.evaluate("area => area.value.slice(area.selectionStart, area.selectionEnd)")
    assert selected.strip() == '"age": {'
    assert fits(page, width)


def _a_breaking_draft_is_described_in_words(page, width: int) -> None:
    stricter = json.loads(json.dumps(DEMO_SCHEMA))
    stricter["data_types"]["patients"]["fields"]["status"]["choices"] = ["active"]
    stricter["data_types"]["patients"]["fields"]["nickname"] = {"type": "string"}
    page.get_by_role("textbox", name="Schema").fill(json.dumps(stricter))
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_url("**/versions/2/")
    assert page.get_by_role("region", name="This draft cannot be published yet").count() == 0
    # Before anything is published, the diff says in words what integrators will see.
    diff = page.get_by_role("region", name="What publishing changes for integrators").inner_text()
    assert "Compared with version 1, the latest published version." in diff
    assert "Breaking patients.status: choices removed: discharged — 3 existing records left invalid" in diff
    assert "Compatible patients.nickname: field added" in diff
    assert fits(page, width)


def _publishing_it_waits_for_a_confirmation_ticked_by_keyboard(page, width: int) -> None:
    page.get_by_label("Clinic").check()
    page.get_by_role("button", name="Publish version 2").click()
    alert = page.get_by_role("alert")
    assert "Nothing was published: 3 existing records would fail version 2" in alert.inner_text()
    assert "patients.status: choices removed: discharged — 3 records left invalid" in alert.inner_text()
    assert "status: 3 (must be one of active)" in alert.get_by_role("table").inner_text()
    assert fits(page, width)
    # The confirmation is a box to tick, reachable by keyboard; nothing goes until it is ticked.
    box = page.get_by_label("Publish anyway: integrators get the breaking changes named above")
    box.focus()
    page.keyboard.press("Space")
    assert box.is_checked()
    page.get_by_role("button", name="Publish version 2").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/versions/2/")
    assert "Version 2 published to Clinic." in page.get_by_role("status").inner_text()
