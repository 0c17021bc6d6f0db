"""Two real workers, each with its own beat, scan at the same moments: everyone is told once."""

import datetime
import email
import re
from email.header import decode_header, make_header

import pytest
from django.utils import timezone

from conftest import wait_for
from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import grant, make_environment, make_user
from notifications.models import Notice

from .factories import make_failing_webhook

pytestmark = pytest.mark.django_db(transaction=True)


def scans_done(worker) -> int:
    return len(re.findall(r"Task notifications\.scan\[[^]]+\] succeeded", worker.log_path.read_text()))


def test_each_person_is_told_once_by_portal_and_email_with_two_workers(start_worker, tmp_path):
    env = make_environment("clinic")
    for name in ("director-1", "director-2"):
        grant(make_user(name), env)
    make_user("admin", admin=True)
    for number in range(4):
        webhook = make_failing_webhook(env, name=f"Bridge {number}")
        webhook.failing_since = timezone.now() - datetime.timedelta(hours=2)
        webhook.save(update_fields=["failing_since"])
    for number in range(4):
        make_credential(make_client(env), name=f"Key {number}", expires_at=timezone.now() + datetime.timedelta(days=2))
    occasions, people = 8, 3

    outbox = tmp_path / "mail"
    workers = [
        start_worker(
            NOTIFICATIONS_SCAN_SECONDS="0.2", EMAIL_URL=f"filemail:///{outbox}", PORTAL_URL="https://p.example"
        )
        for _ in range(2)
    ]
    wait_for(lambda: all(scans_done(worker) >= 10 for worker in workers), timeout=60, message="ten scans per worker")

    assert Notice.objects.count() == occasions * people
    assert Notice.objects.filter(emailed_at__isnull=True).count() == 0
    messages = [
        email.message_from_string(chunk.strip())
        for path in outbox.iterdir()
        for chunk in path.read_text().split("-" * 79)
        if chunk.strip()
    ]
    sent = sorted((message["To"], str(make_header(decode_header(message["Subject"])))) for message in messages)
    assert len(sent) == occasions * people
    assert len(set(sent)) == len(sent)  # nobody got the same message twice
    assert ("director-1@example.org", "[Integration Tools] Webhook “Bridge 0” is failing (Clinic)") in sent
