"""The links in e-mails lead to the portal as it is served: `PORT=8080 make run` links to port 8080."""

import datetime
import email
import re

import pytest
from django.utils import timezone

from conftest import wait_for
from environments.tests.factories import grant, make_environment, make_user

from .factories import make_failing_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def emails_in(outbox) -> list[str]:
    bodies = []
    for path in outbox.iterdir() if outbox.exists() else []:
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                bodies.append(email.message_from_string(chunk.strip()).get_payload(decode=True).decode())
    return bodies


def test_email_links_use_the_port_the_portal_is_served_on(start_worker, tmp_path, monkeypatch):
    monkeypatch.delenv("PORTAL_URL", raising=False)  # as on a fresh clone: nothing but PORT is set
    env = make_environment("clinic")
    grant(make_user("director"), env)
    webhook = make_failing_webhook(env, name="Bridge")
    webhook.failing_since = timezone.now() - datetime.timedelta(hours=2)
    webhook.save(update_fields=["failing_since"])

    outbox = tmp_path / "mail"
    start_worker(NOTIFICATIONS_SCAN_SECONDS="0.2", EMAIL_URL=f"filemail:///{outbox}", PORT="8123")
    [body] = wait_for(lambda: emails_in(outbox), timeout=60, message="the director's e-mail")

    links = re.findall(r"https?://\S+", body)
    assert links and all(link.startswith("http://127.0.0.1:8123/") for link in links), body
    assert f"http://127.0.0.1:8123/e/clinic/webhooks/{webhook.pk}/" in body
