"""Promoting an integration from Test to Live: a reviewable draft, new secrets, Live's verification, audited."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from environments.models import AuditEvent
from environments.tests.factories import make_environment
from webhooks.models import ManualSend, Webhook
from webhooks.promotion import PromotionRefused, plan_lines, plan_promotion, promote
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.promotion_data import answering_the_challenge, integration
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db


def test_the_draft_says_what_will_be_created_and_what_differs_and_writes_nothing(test_and_live):
    test, live = test_and_live
    integration(test, "http://127.0.0.1:9201/hooks")
    lines = plan_lines(plan_promotion(test, live))
    assert lines == [
        "Promote from test-clinic to live-clinic:",
        "- webhook “Care receiver” to http://127.0.0.1:9201/hooks: patients.created, patients.updated",
        "  creates client “Care app” (patients:read)",
        "  differs: event type visits.created does not exist there",
        "  differs: field patients.nickname does not exist there",
        "  differs: extra headers not copied (their values may be credentials): X-Team",
        "  differs: scope visits:read does not exist there",
        "New signing secrets, key pairs and client secrets are generated there, each shown once.",
        "Live Clinic requires verification: each webhook stays unverified until its receiver answers.",
    ]
    assert not live.webhooks.exists() and not live.clients.exists()


def test_promoted_to_live_it_gets_new_secrets_and_waits_for_its_receiver(test_and_live):
    test, live = test_and_live
    with Receiver(judge=answering_the_challenge) as receiver:
        source = integration(test, receiver.url)
        [promoted] = promote(plan_promotion(test, live, ["Care receiver"]))
        webhook = promoted.webhook
        assert webhook.environment == live and webhook.state == Webhook.State.UNVERIFIED
        assert webhook.event_types == ["patients.created", "patients.updated"]
        assert webhook.payload_fields == {"patients": ["first_name"]}
        assert (webhook.url, webhook.payload_format, webhook.extra_headers) == (source.url, "full", {})
        assert promoted.signing_secret.startswith("whsec_") and promoted.signing_secret != source.plain_secret
        assert webhook.client.scopes == ["patients:read"] and webhook.client.client_id != source.client.client_id
        assert promoted.client_secret and not promoted.client_secret.startswith(promoted.signing_secret[:12])

        verification = ManualSend.objects.get(webhook=webhook, kind=ManualSend.Kind.VERIFICATION)
        assert carried_out(verification).passed
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.ACTIVE and webhook.verified_at is not None
    audit = AuditEvent.objects.get(action="webhook.promoted", target_id=str(webhook.pk))
    assert audit.details["from_environment"] == "test-clinic"
    assert "whsec_" not in json.dumps(audit.details)


def test_a_name_already_taken_in_live_in_any_case_stops_the_promotion(test_and_live):
    test, live = test_and_live
    integration(test, "http://127.0.0.1:9201/hooks")
    make_webhook(live, "http://127.0.0.1:9202/", name="care RECEIVER")
    plan = plan_promotion(test, live)
    assert plan.problems == ["Care receiver: Live Clinic already has a webhook named “Care receiver”"]
    with pytest.raises(PromotionRefused):
        promote(plan)
    assert live.webhooks.count() == 1


def test_the_command_shows_the_draft_then_promotes_with_yes(test_and_live):
    test, live = test_and_live
    integration(test, "http://127.0.0.1:9201/hooks")
    out = io.StringIO()
    call_command("promote_integration", "--from", "test-clinic", "--to", "live-clinic", stdout=out)
    assert "Nothing created: run again with --yes to promote." in out.getvalue()
    assert not live.webhooks.exists()

    out = io.StringIO()
    call_command("promote_integration", "--from", "test-clinic", "--to", "live-clinic", "--yes", "--json", stdout=out)
    [created] = json.loads(out.getvalue())["webhooks"]
    assert created["state"] == "unverified" and created["signing_secret"].startswith("whsec_")
    assert created["event_types"] == ["patients.created", "patients.updated"]

    with pytest.raises(CommandError, match="no webhook Nope"):
        call_command("promote_integration", "--from", "test-clinic", "--to", "live-clinic", "--webhook", "Nope")
    other = make_environment("elsewhere")
    with pytest.raises(CommandError, match="an integration moves only between environments that share a configuration"):
        call_command("promote_integration", "--from", "test-clinic", "--to", other.slug)
