"""Extra headers may carry a receiver's credentials: encrypted at rest, write-only in forms, rotated with the keys."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from environments.models import AuditEvent
from environments.records import create_record
from environments.tests.factories import log_in_director, make_environment
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
BEARER = "Bearer rcv-3f9a7c0e51d2"


@pytest.fixture
def env():
    return make_environment("clinic")


def stored_column(webhook: Webhook) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extra_headers FROM webhooks_webhook WHERE id = %s", [webhook.pk])
        return cursor.fetchone()[0]


def edit_form(webhook: Webhook, extra_headers: str) -> dict:
    return {
        "name": webhook.name,
        "url": webhook.url,
        "event_types": webhook.event_types,
        "security_method": "secret",
        "verify_tls": "on",
        "payload_format": "full",
        "max_events_per_request": "1",
        "timeout_seconds": "15",
        "extra_headers": extra_headers,
    }


def test_header_values_are_encrypted_at_rest_and_still_sent(env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, extra_headers={"Authorization": BEARER, "X-Team": "care"})
        assert "rcv-3f9a7c0e51d2" not in stored_column(webhook)
        assert "Authorization" not in stored_column(webhook)

        create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        attempt_delivery(webhook.deliveries.get().pk)
        request = receiver.requests[0]
    assert request.headers["Authorization"] == BEARER
    assert request.headers["X-Team"] == "care"


def test_the_edit_form_shows_names_only_and_a_blank_value_keeps_the_stored_one(client, env):
    log_in_director(client, env)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, extra_headers={"Authorization": BEARER, "X-Team": "care"})
        edit_url = f"/e/clinic/webhooks/{webhook.pk}/edit/"

        page = client.get(edit_url).content.decode()
        assert "Authorization:\nX-Team:</textarea>" in page
        assert "rcv-3f9a7c0e51d2" not in page

        response = client.post(edit_url, edit_form(webhook, "Authorization:\nX-Team: ops"))
        assert response.status_code == 302
        webhook.refresh_from_db()
        assert webhook.extra_headers == {"Authorization": BEARER, "X-Team": "ops"}

        response = client.post(edit_url, edit_form(webhook, "Authorization:\nX-New:"))
        assert response.status_code == 200
        assert "Give X-New a value" in response.content.decode()
        assert "rcv-3f9a7c0e51d2" not in response.content.decode()

    changes = [event.details["changes"] for event in AuditEvent.objects.filter(action="webhook.updated")]
    assert changes == [{"extra_headers_changed": ["X-Team"]}]
    assert "rcv-3f9a7c0e51d2" not in json.dumps(list(AuditEvent.objects.values_list("details", flat=True)))


def test_rotating_encryption_keys_reencrypts_header_values(env, settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    webhook = make_webhook(env, "http://127.0.0.1:9999/hooks", extra_headers={"Authorization": BEARER})

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_encryption_keys", "--json", stdout=io.StringIO())
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key]):
        assert json.loads(Fernet(new_key).decrypt(stored_column(webhook).encode())) == {"Authorization": BEARER}
        assert Webhook.objects.get(pk=webhook.pk).extra_headers == {"Authorization": BEARER}
