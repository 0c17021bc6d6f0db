"""The guided rotation in a real browser, for a compromised credential: its tokens stop working."""

import pytest
import requests

from credentials.tests.factories import make_client, make_credential
from environments.tests.browser import log_in
from environments.tests.factories import grant, make_environment, make_user
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ADA = {"first_name": "Ada", "last_name": "Lovelace"}


def token_of(base: str, client_id: str, secret: str) -> str:
    answer = requests.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


def write_patient(base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    answer = requests.post(f"{base}/api/v1/clinic/patients/", json={"fields": ADA}, headers=headers, timeout=10)
    return answer.status_code


@pytest.mark.parametrize("width", [390, 1440])
def test_a_compromised_credential_is_rotated_and_its_tokens_stop_writing(page, live_server, width, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    environment = make_environment("clinic")
    grant(make_user("dana"), environment)
    app = make_client(environment, name="Lab importer")
    old, old_secret = make_credential(app, name="Old")
    stolen = token_of(live_server.url, app.client_id, old_secret)
    assert write_patient(live_server.url, stolen) == 201
    with Receiver() as receiver:
        make_webhook(environment, receiver.url, security_method="credentials", signing_credential_ids=[str(old.pk)])

        page.set_viewport_size({"width": width, "height": 900})
        log_in(page, "dana")
        page.goto(f"/e/clinic/credentials/clients/{app.client_id}/rotation/")
        step4 = page.locator("ol.steps > li").nth(3)
        assert "After steps 1 to 3" in step4.inner_text()  # says what will happen, not "Still active: ."
        page.get_by_role("link", name="New credential").click()
        page.get_by_label("Name").fill("New")
        page.get_by_role("button", name="Create").click()
        page.get_by_role("link", name="Done: back to the rotation (step 2)").click()
        page.wait_for_url(f"**/credentials/clients/{app.client_id}/rotation/")

        page.get_by_role("button", name="Add the new credential to signing").click()
        page.get_by_label("It may be: also revoke every token it obtained").check()
        page.get_by_role("button", name="Remove from signing and invalidate").click()
        message = page.locator(".messages").inner_text()
        assert "“Old” invalidated" in message and "1 of its tokens revoked" in message
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        page.get_by_role("button", name="The receivers have dropped the old key").click()
        step6 = page.locator("ol.steps > li").nth(5)
        assert "Confirmed by dana" in step6.inner_text()
    assert write_patient(live_server.url, stolen) == 401
    assert not page.console_errors
