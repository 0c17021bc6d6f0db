"""Patient data in the portal: each view of a delivery's bodies is audited; Viewers may be shown metadata only."""

import pytest
from django.urls import reverse

from environments.models import AuditEvent, Grant
from environments.tests.factories import grant, make_environment, make_user
from webhooks.tests.factories import make_delivery, make_webhook

pytestmark = pytest.mark.django_db

BODY = '{"type": "patients.created", "data": {"name": "Jo Bloggs"}}'


@pytest.fixture
def delivery(settings):
    settings.WEBHOOK_ALLOW_HTTP, settings.WEBHOOK_ALLOWED_NETWORKS = True, ["127.0.0.1/32"]
    environment = make_environment("clinic")
    return make_delivery(make_webhook(environment, "http://127.0.0.1:9100/hook"), body=BODY)


def opened_by_viewer(client, delivery):
    viewer = make_user("val")
    grant(viewer, delivery.environment, Grant.Role.VIEWER)
    client.force_login(viewer)
    answer = client.get(reverse("delivery_detail", args=[delivery.environment.slug, delivery.pk]))
    assert answer.status_code == 200, answer
    return answer.content.decode()


def test_a_viewer_opening_a_payload_is_in_the_audit_log_under_patient_data(client, delivery):
    assert "Jo Bloggs" in opened_by_viewer(client, delivery)
    event = AuditEvent.objects.get(action="patient_data.viewed")
    assert (event.actor_label, event.target_id, event.environment) == ("val", str(delivery.pk), delivery.environment)
    client.force_login(make_user("root", admin=True))
    log = client.get(reverse("audit_log"), {"action": "patient_data"}).content.decode()
    assert "patient_data.viewed" in log and "val" in log


def test_with_viewers_on_metadata_only_a_viewer_sees_no_body_and_nothing_is_recorded(client, delivery, settings):
    settings.VIEWERS_SEE_PAYLOADS = False
    page = opened_by_viewer(client, delivery)
    assert "Jo Bloggs" not in page and "Not shown to Viewers" in page
    assert not AuditEvent.objects.filter(action="patient_data.viewed").exists()
