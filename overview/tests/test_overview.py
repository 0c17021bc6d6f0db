"""The Overview shows an environment at a glance."""

import pytest

from environments.records import create_record
from environments.tests.factories import make_environment, make_user

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
