"""The Overview shows an environment at a glance."""

import datetime

import pytest
from django.utils import timezone

from environments.records import create_record
from environments.tests.factories import make_environment, make_user
from webhooks.models import Delivery
from webhooks.tests.factories import make_delivery, make_webhook

pytestmark = pytest.mark.django_db


def test_overview_shows_the_schema_record_counts_and_event_types(client):
    env = make_environment("clinic")
    create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
    client.force_login(make_user(admin=True))
    page = client.get("/e/clinic/").content.decode()
    assert "Configuration" in page and "version 1" in page
    assert "<code>patients.created</code>" in page
    assert "<td>1</td>" in page  # one patient
    assert "No Celery worker has reported in yet" in page


def test_the_overview_shows_the_p95_delay_in_minutes_and_seconds_not_milliseconds(client):
    env = make_environment("clinic")
    webhook = make_webhook(env, "http://127.0.0.1:8765/hook", name="EHR bridge")
    received = timezone.now()
    make_delivery(
        webhook,
        status=Delivery.Status.SUCCEEDED,
        created_at=received - datetime.timedelta(milliseconds=329_799),
        delivered_at=received,
    )
    client.force_login(make_user(admin=True))
    page = client.get("/e/clinic/").content.decode()
    assert "<dd>5 min 30 s / 5 min 30 s</dd>" in page
    assert "329799" not in page
