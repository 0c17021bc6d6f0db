"""Credentials in a real browser: create, see the secret once, reload and see it gone, rename, invalidate."""

import pytest

from credentials.models import Credential
from credentials.tests.factories import make_client
from environments.tests.browser import log_in
from environments.tests.factories import make_environment, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_credential_is_created_shown_once_renamed_and_invalidated(page):
    env = make_environment("clinic")
    make_client(env, name="EHR sync")
    make_user("root", admin=True)
    log_in(page, "root")

    page.goto("/e/clinic/credentials/")
    page.get_by_role("link", name="New credential").click()
    page.get_by_label("Name").fill("Production")
    page.get_by_role("button", name="Create").click()

    assert page.get_by_role("alert").inner_text().startswith("Copy the client secret now.")
    secret = page.locator("#client-secret").inner_text()
    assert secret.startswith("itcs_")

    page.reload()
    assert page.get_by_role("heading", level=1).inner_text() == "Secret no longer available"
    assert secret not in page.content()

    page.get_by_role("link", name="Done").click()
    page.get_by_role("link", name="Rename Production").click()
    page.get_by_label("Name").fill("Production server")
    page.get_by_role("button", name="Rename").click()
    assert "Renamed to “Production server”." in page.get_by_role("status").inner_text()

    page.get_by_role("link", name="Invalidate Production server").click()
    assert "Tokens it already obtained stay valid until they expire" in page.locator("main").inner_text()
    page.get_by_label("Reason").fill("moved to a new server")
    page.get_by_role("button", name="Invalidate credential").click()
    assert "can no longer obtain tokens" in page.get_by_role("status").inner_text()
    row = page.get_by_role("row", name="Production server")
    assert "invalidated" in row.inner_text()
    assert Credential.objects.get().invalidation_reason == "moved to a new server"
    assert page.console_errors == []
