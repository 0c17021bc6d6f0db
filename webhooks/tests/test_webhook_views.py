"""The Webhooks pages: list, create (secret shown once), test delivery, state, history, re-send, bulk re-send."""

import json

import pytest
from django.utils import timezone

from environments.models import AuditEvent, Grant
from environments.records import create_record
from environments.tests.factories import grant, make_user
from environments.workers import report_in
from webhooks.bulk import bulk_resend_step
from webhooks.delivery.sending import attempt_delivery
from webhooks.lifecycle import disable_webhook
from webhooks.models import Attempt, BulkResend, Delivery, ManualSend, Webhook
from webhooks.tests.factories import carried_out, make_delivery, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
PATIENT = {"first_name": "Ada", "last_name": "Lovelace"}


def new_webhook_form(receiver_url: str, **overrides) -> dict:
    return {
        "name": "Care app",
        "url": receiver_url,
        "event_types": ["patients.created", "patients.updated"],
        "security_method": "secret",
        "verify_tls": "on",
        "payload_format": "full",
        "max_events_per_request": "1",
        "timeout_seconds": "15",
        "extra_headers": "X-Team: care-ops",
        **overrides,
    }


def test_creating_a_webhook_shows_its_signing_secret_once_and_audits_it(client, director, env):
    with Receiver() as receiver:
        response = client.post("/e/clinic/webhooks/new/", new_webhook_form(receiver.url))
    webhook = Webhook.objects.get(environment=env)
    assert response["Location"] == f"/e/clinic/webhooks/{webhook.pk}/secret/"

    page = client.get(response["Location"])
    secret = page.context["secret"]
    assert secret.startswith("whsec_") and secret in page.content.decode()
    assert "no-store" in page["Cache-Control"] or "max-age=0" in page["Cache-Control"]
    assert "Secret no longer available" in client.get(response["Location"]).content.decode()

    assert webhook.event_types == ["patients.created", "patients.updated"]
    assert webhook.extra_headers == {"X-Team": "care-ops"}
    event = AuditEvent.objects.get(action="webhook.created")
    assert event.actor_label == "director" and event.details["url"] == webhook.url
    assert secret[6:] not in json.dumps(event.details)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"url": "http://10.0.0.1/hook"}, "url", "private address"),
        ({"event_types": []}, "event_types", "This field is required"),
        ({"extra_headers": "Host: evil.example"}, "extra_headers", "cannot be overridden"),
        ({"extra_headers": "X-Bad Name: 1"}, "extra_headers", "not a valid header name"),
        ({"security_method": "credentials"}, "signing_credentials", "choose at least one credential"),
        ({"max_events_per_request": "1000"}, "max_events_per_request", "less than or equal to 100"),
    ],
)
def test_bad_input_is_refused_with_the_field_named_and_nothing_saved(client, director, overrides, field, message):
    with Receiver() as receiver:
        response = client.post("/e/clinic/webhooks/new/", new_webhook_form(receiver.url, **overrides))
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message.lower() in errors.lower(), response.context["form"].errors
    assert not Webhook.objects.exists()


def test_a_header_value_with_a_line_break_cannot_inject_a_header(env):
    from webhooks.configure import WebhookFields, WebhookInvalid, create_webhook

    with Receiver() as receiver, pytest.raises(WebhookInvalid) as refused:
        create_webhook(
            env,
            WebhookFields("X", receiver.url, ["patients.created"], extra_headers={"X-A": "1\r\nX-Injected: 2"}),
        )
    assert "one line" in refused.value.errors["extra_headers"]


def test_the_list_shows_name_url_last_triggered_and_state_sortable_and_searchable(client, director, env):
    with Receiver() as receiver:
        make_webhook(env, receiver.url, name="Billing")
        alpha = make_webhook(env, receiver.url, name="Alpha")
        Webhook.objects.filter(pk=alpha.pk).update(last_triggered_at=timezone.now())
        page = client.get("/e/clinic/webhooks/?sort=-last_triggered")
        assert [w.name for w in page.context["webhooks"]] == ["Alpha", "Billing"]
        assert [w.name for w in client.get("/e/clinic/webhooks/?q=bill").context["webhooks"]] == ["Billing"]
    html = page.content.decode()
    for column in ("Name", "URL", "Last triggered", "State", "Actions"):
        assert f">{column}" in html
    assert "patients.created" in html and "&quot;type&quot;: &quot;patients.created&quot;" in html


def test_viewers_see_webhooks_but_cannot_change_them(client, env):
    viewer = make_user("viewer")
    grant(viewer, env, Grant.Role.VIEWER)
    client.force_login(viewer)
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
    assert client.get("/e/clinic/webhooks/").status_code == 200
    assert client.get("/e/clinic/webhooks/new/").status_code == 403
    assert client.post(f"/e/clinic/webhooks/{webhook.pk}/pause/").status_code == 403
    assert client.post(f"/e/clinic/webhooks/{webhook.pk}/test/").status_code == 403


def test_a_test_delivery_shows_status_duration_and_response_inline(client, director, env):
    report_in("worker-1")  # a worker runs; carried_out() below does its part here
    with Receiver() as receiver:
        receiver.answer(202, body=b'{"accepted": true}')
        webhook = make_webhook(env, receiver.url)
        response = client.post(f"/e/clinic/webhooks/{webhook.pk}/test/")
        send = ManualSend.objects.get(kind="test")
        assert response["Location"] == f"/e/clinic/webhooks/{webhook.pk}/?test={send.pk}#testing"
        assert receiver.requests == []  # the web request only asked; a worker sends
        waiting = client.get(response["Location"]).content.decode()
        attempt = carried_out(send).attempt
        html = client.get(response["Location"]).content.decode()
        client.get(response["Location"])  # a reload shows the result again and sends nothing
    assert "Sending…</span> The test delivery went to a background worker" in waiting
    assert f'<a href="?test={send.pk}&amp;again=1#testing">Reload to see the result</a>' in waiting
    assert len(receiver.requests) == 1
    assert '<span class="badge ok">202</span> received' in html
    assert "{&quot;accepted&quot;: true}" in html
    assert json.loads(receiver.requests[0].body)["type"] == "webhook.test"
    assert receiver.requests[0].headers["webhook-test"] == "true"
    assert f"in {attempt.duration_ms} ms" in html
    # The result sits under the Send test button, before the signature self-test.
    assert html.index("Send test delivery") < html.index("202</span> received") < html.index("Signature self-test")


def test_a_test_can_send_the_example_of_a_subscribed_event_type(client, director, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.updated"])
        client.post(f"/e/clinic/webhooks/{webhook.pk}/test/", {"event_type": "patients.updated"})
        carried_out(ManualSend.objects.get())
        refused = client.post(f"/e/clinic/webhooks/{webhook.pk}/test/", {"event_type": "workers.created"}, follow=True)
    [request] = receiver.requests
    sent = json.loads(request.body)
    assert sent["type"] == "patients.updated" and request.headers["webhook-test"] == "true"
    assert sent["data"]["fields"] == {
        "first_name": "text",
        "last_name": "text",
        "birth_date": "1990-12-10",
        "email": "someone@example.org",
        "status": "active",
    }
    assert "Nothing was sent. " in refused.content.decode()
    assert "does not subscribe to workers.created" in refused.content.decode()
    assert Delivery.objects.get(webhook=webhook).is_test


def test_pause_and_resume_from_the_page_are_audited(client, director, env):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        client.post(f"/e/clinic/webhooks/{webhook.pk}/pause/")
        webhook.refresh_from_db()
        assert webhook.state == Webhook.State.PAUSED
        create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        asked = client.post(f"/e/clinic/webhooks/{webhook.pk}/resume/", {"waiting": "discard"}).content.decode()
        assert "Discard 1 waiting delivery of" in asked and "will <strong>never get</strong>" in asked
        webhook.refresh_from_db()
        assert webhook.state == Webhook.State.PAUSED  # nothing happens until confirmed
        client.post(f"/e/clinic/webhooks/{webhook.pk}/resume/", {"waiting": "discard", "confirm": "discard"})
    webhook.refresh_from_db()
    assert webhook.state == Webhook.State.ACTIVE
    assert webhook.deliveries.get().status == "discarded"
    actions = (
        AuditEvent.objects.filter(target_type="webhooks.webhook", target_id=str(webhook.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert list(actions) == ["webhook.created", "webhook.paused", "webhook.resumed"]


def test_history_filters_pages_by_keyset_and_escapes_responses(client, director, env, settings):
    settings.DELIVERY_PAGE_SIZE = 2
    with Receiver() as receiver:
        receiver.default.status = 500
        receiver.default.body = b"<script>alert(1)</script>"
        webhook = make_webhook(env, receiver.url)
        for _ in range(3):
            create_record(env, "patients", PATIENT)
        for delivery in Delivery.objects.all():
            attempt_delivery(delivery.pk)

    first = client.get(f"/e/clinic/webhooks/{webhook.pk}/deliveries/")
    ids = [d.pk for d in first.context["deliveries"]]
    assert len(ids) == 2 and ids == sorted(ids, reverse=True)
    second = client.get(f"/e/clinic/webhooks/{webhook.pk}/deliveries/?{first.context['next_query']}")
    assert [d.pk for d in second.context["deliveries"]] == [min(Delivery.objects.values_list("pk", flat=True))]
    assert not second.context["next_query"]

    assert len(client.get("/e/clinic/deliveries/?q=500").context["deliveries"]) == 2
    assert client.get("/e/clinic/deliveries/?status=succeeded").context["deliveries"] == []
    nothing = client.get("/e/clinic/deliveries/?q=nonsense")
    assert nothing.context["deliveries"] == []
    assert "search takes an event id" in nothing.content.decode().lower()

    delivery = Delivery.objects.order_by("id").first()
    event_id = delivery.events.get().public_id
    assert [d.pk for d in client.get(f"/e/clinic/deliveries/?q={event_id}").context["deliveries"]] == [delivery.pk]
    detail = client.get(f"/e/clinic/deliveries/{delivery.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail and "<script>alert(1)" not in detail
    assert delivery.message_id in detail and "webhook-signature" in detail


def test_a_failed_delivery_is_re_sent_with_the_same_webhook_id_and_audited(client, director, env):
    report_in("worker-1")  # a worker runs; carried_out() below does its part here
    with Receiver() as receiver:
        receiver.answer(500)
        webhook = make_webhook(env, receiver.url)
        create_record(env, "patients", PATIENT)
        delivery = Delivery.objects.get()
        attempt_delivery(delivery.pk)
        response = client.post(f"/e/clinic/deliveries/{delivery.pk}/resend/")
        send = ManualSend.objects.get(kind="resend")
        assert response["Location"] == f"/e/clinic/deliveries/{delivery.pk}/?resend={send.pk}"
        assert (
            "Sending…</span> The re-send went to a background worker"
            in client.get(response["Location"]).content.decode()
        )
        carried_out(send)
        page = client.get(response["Location"]).content.decode()
    assert f"✓ received</span> Re-sent {delivery.message_id}: the receiver answered 200 in" in page
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery.message_id] * 2
    assert delivery.attempts.order_by("number").last().trigger == Attempt.Trigger.RESEND
    assert AuditEvent.objects.filter(action="delivery.resent", actor_label="director").exists()
    assert webhook.pk


def test_bulk_re_send_covers_failed_deliveries_in_the_range_and_shows_progress(client, director, env):
    with Receiver() as receiver:
        receiver.default.status = 500
        webhook = make_webhook(env, receiver.url, timeout_seconds=2)
        for _ in range(3):
            create_record(env, "patients", PATIENT)
        Delivery.objects.update(
            status=Delivery.Status.FAILED, attempt_count=10, next_attempt_at=None, leased_until=None, lease_owner=""
        )
        receiver.default.status = 200

        client.post(f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"since": "", "until": ""})
        job = BulkResend.objects.get()
        assert job.total == 3
        while bulk_resend_step(job.pk) is not None:
            pass

    job.refresh_from_db()
    assert job.state == BulkResend.State.DONE and job.done == 3 and job.succeeded == 3
    assert Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count() == 3
    assert "3/3: 3 delivered by the job" in client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert AuditEvent.objects.filter(action="delivery.bulk_resend_started").exists()


def test_a_credential_that_signs_a_webhook_cannot_be_invalidated_and_the_refusal_names_it(client, director, env):
    from credentials.tests.factories import make_client, make_credential

    app = make_client(env)
    credential, _ = make_credential(app)
    with Receiver() as receiver:
        make_webhook(
            env,
            receiver.url,
            name="Signed hook",
            security_method="credentials",
            signing_credential_ids=[str(credential.pk)],
        )
    response = client.post(f"/e/clinic/credentials/{credential.pk}/invalidate/", {"reason": "leak"}, follow=True)
    assert "Signed hook" in response.content.decode()
    credential.refresh_from_db()
    assert credential.invalidated_at is None


def test_retry_now_on_the_page_makes_waiting_deliveries_due_and_is_audited(client, director, env):
    with Receiver() as receiver:
        receiver.default.status = 503
        webhook = make_webhook(env, receiver.url)
        create_record(env, "patients", PATIENT)
        delivery = Delivery.objects.get(webhook=webhook)
        attempt_delivery(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.next_attempt_at > timezone.now()

        page = client.get(f"/e/clinic/webhooks/{webhook.pk}/")
        assert "Retry now" in page.content.decode()
        response = client.post(f"/e/clinic/webhooks/{webhook.pk}/retry-now/", follow=True)

    assert "Sending 1 waiting delivery of" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.next_attempt_at <= timezone.now()
    assert AuditEvent.objects.filter(action="webhook.retried_now", target_id=str(webhook.pk)).exists()


def test_the_audit_log_tells_webhook_changes_in_words_with_names(client, director, env):
    from credentials.tests.factories import make_client, make_credential

    credential, _ = make_credential(make_client(env, name="Lab importer"), name="Primary")
    with Receiver() as receiver:
        make_webhook(
            env,
            receiver.url,
            name="EHR bridge",
            security_method="credentials",
            signing_credential_ids=[str(credential.pk)],
        )
    page = client.get("/audit/?environment=clinic").content.decode()
    assert "<dt>signing credentials</dt><dd>Lab importer: Primary</dd>" in page
    listed = page.split("<dt>event types</dt><dd>")[1].split("</dd>")[0]
    assert sorted(listed.split(", ")) == ["patients.created", "patients.deleted", "patients.updated"]
    assert str(credential.pk) not in page  # names, not ids


def test_one_waiting_delivery_is_spoken_of_in_the_singular(client, director, env):
    with Receiver() as receiver:
        receiver.answer(503)
        webhook = make_webhook(env, receiver.url, name="EHR bridge")
        create_record(env, "patients", {"first_name": "Ada", "last_name": "Lovelace"})
        attempt_delivery(webhook.deliveries.get().pk)  # fails: one delivery waits for its retry
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert "Retry now sends the 1 waiting delivery at once, oldest first, instead of at its scheduled retry." in page

    sent = client.post(f"/e/clinic/webhooks/{webhook.pk}/retry-now/", follow=True).content.decode()
    assert "Sending 1 waiting delivery of “EHR bridge” now" in sent

    client.post(f"/e/clinic/webhooks/{webhook.pk}/pause/")
    confirm = client.post(f"/e/clinic/webhooks/{webhook.pk}/resume/", {"waiting": "discard"}).content.decode()
    assert "<title>Discard 1 delivery?" in confirm
    assert "the 1 change it carries: it is marked discarded" in confirm
    resumed = client.post(
        f"/e/clinic/webhooks/{webhook.pk}/resume/", {"waiting": "discard", "confirm": "discard"}, follow=True
    ).content.decode()
    assert "is active again; 1 waiting delivery discarded." in resumed


# --- Found by an exploratory run of make run ----------------------------------------------------------


def test_a_webhook_disabled_by_a_410_says_the_deliveries_that_got_it_wait_for_recover(client, director, env):
    webhook = make_webhook(env, "http://127.0.0.1:9999/hook")
    disable_webhook(webhook, Webhook.GONE_REASON)
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert "The deliveries that got the 410 failed for good and are not among them" in page
    assert 'href="#recover">recover</a> the failed ones' in page


def test_a_delivery_whose_payload_was_erased_offers_no_re_send(client, director, env):
    webhook = make_webhook(env, "http://127.0.0.1:9999/hook")
    delivery = make_delivery(webhook, status=Delivery.Status.FAILED, payload_erased_at=timezone.now())
    page = client.get(f"/e/clinic/deliveries/{delivery.pk}/").content.decode()
    assert "Its payload was erased: there is nothing left to re-send." in page
    assert 'disabled aria-describedby="resend-help">Re-send</button>' in page


def test_background_wording_reads_as_one_sentence(client, director, env):
    report_in("worker-1")
    webhook = make_webhook(env, "http://127.0.0.1:9999/hook")
    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/").content.decode()
    assert "in the background, oldest first" in page
    assert "in the background ," not in page
