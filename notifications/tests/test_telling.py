"""Who is told what, once per occasion, by e-mail and in the portal, never with a secret."""

import datetime

import pytest
import trustme
from django.utils import timezone

from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import grant, make_environment, make_user
from notifications.models import Kind, Mute, Notice
from notifications.outbox import scan
from webhooks.lifecycle import disable_webhook
from webhooks.models import BulkResend, BulkResendItem, ReceiverAuth
from webhooks.receiver_auth import set_client_certificate
from webhooks.tests.factories import make_webhook

from .factories import make_failing_webhook

pytestmark = pytest.mark.django_db(transaction=True)
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def env():
    return make_environment("clinic")


@pytest.fixture
def people(env):
    """A Program Director and a Viewer of `env`, an Admin, and a Program Director of another environment."""
    director = make_user("director")
    grant(director, env)
    viewer = make_user("viewer")
    grant(viewer, env, "viewer")
    elsewhere = make_user("elsewhere")
    grant(elsewhere, make_environment("other"))
    return {"director": director, "viewer": viewer, "admin": make_user("admin", admin=True), "elsewhere": elsewhere}


def told(kind=None):
    notices = Notice.objects.order_by("user__username", "id")
    if kind:
        notices = notices.filter(kind=kind)
    return [(notice.user.username, notice.subject) for notice in notices]


def test_a_webhook_failing_for_an_hour_is_told_once_to_its_directors_and_admins(env, people, mailoutbox):
    webhook = make_failing_webhook(env, name="EHR bridge", extra_headers={"Authorization": "Bearer rcv-token-123"})
    started = webhook.failing_since

    assert scan(started + 59 * datetime.timedelta(minutes=1)) == 0
    assert scan(started + 61 * datetime.timedelta(minutes=1)) == 2
    assert told() == [
        ("admin", "Webhook “EHR bridge” is failing (Clinic)"),
        ("director", "Webhook “EHR bridge” is failing (Clinic)"),
    ]
    assert scan(started + 2 * HOUR) == 0  # the same failing spell: nobody is told twice

    assert sorted(message.to[0] for message in mailoutbox) == ["admin@example.org", "director@example.org"]
    message = mailoutbox[0]
    assert message.subject == "[Integration Tools] Webhook “EHR bridge” is failing (Clinic)"
    assert "The last attempt got: HTTP 503." in message.body
    assert f"Open it: https://portal.example.org/e/clinic/webhooks/{webhook.pk}/" in message.body
    for secret in (webhook.plain_secret, "rcv-token-123", webhook.url):
        assert secret not in message.body and secret not in message.subject


def test_a_new_failing_spell_is_a_new_occasion(env, people):
    first = make_failing_webhook(env, name="EHR bridge")
    scan(first.failing_since + 2 * HOUR)
    first.failing_since = timezone.now() + HOUR  # it recovered, then failed again later
    first.save(update_fields=["failing_since"])

    assert scan(first.failing_since + 2 * HOUR) == 2
    assert len(told(Kind.WEBHOOK_FAILING)) == 4


def test_people_are_warned_at_half_and_at_nine_tenths_of_the_auto_disable_window(env, people, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS = 5
    webhook = make_failing_webhook(env, name="EHR bridge")
    started = webhook.failing_since

    scan(started + 2.4 * DAY)
    assert told(Kind.WEBHOOK_DISABLING) == []
    scan(started + 2.5 * DAY + HOUR)
    assert told(Kind.WEBHOOK_DISABLING) == [
        ("admin", "Webhook “EHR bridge” will be disabled in 2.5 days (Clinic)"),
        ("director", "Webhook “EHR bridge” will be disabled in 2.5 days (Clinic)"),
    ]
    body = Notice.objects.filter(kind=Kind.WEBHOOK_DISABLING).first().body
    assert "It has used 50 % of the 5 days" in body
    scan(started + 3 * DAY)
    assert len(told(Kind.WEBHOOK_DISABLING)) == 2
    scan(started + 4.6 * DAY)
    subjects = [subject for user, subject in told(Kind.WEBHOOK_DISABLING) if user == "director"]
    assert len(subjects) == 2
    assert subjects[1] == "Webhook “EHR bridge” will be disabled in 10 hours (Clinic)"


def test_a_disabled_webhook_is_told_with_its_reason_and_a_link_to_enable_it(env, people, mailoutbox):
    webhook = make_failing_webhook(env, name="EHR bridge")
    disable_webhook(webhook, "the receiver answered 410 Gone")

    scan()
    scan()
    notice = Notice.objects.get(kind=Kind.WEBHOOK_DISABLED, user=people["director"])
    assert notice.subject == "Webhook “EHR bridge” was disabled (Clinic)"
    assert "by system: the receiver answered 410 Gone." in notice.body
    assert notice.link == f"/e/clinic/webhooks/{webhook.pk}/#resume"
    assert len(told(Kind.WEBHOOK_DISABLED)) == 2


def test_credential_expiry_is_told_at_14_days_at_3_days_and_when_it_expires(env, people):
    now = timezone.now()
    client = make_client(env, name="Lab importer")
    make_credential(client, name="Primary", expires_at=now + 20 * DAY)

    scan(now)
    assert told(Kind.CREDENTIAL_EXPIRY) == []
    scan(now + 7 * DAY)
    scan(now + 8 * DAY)
    scan(now + 18 * DAY)
    scan(now + 20 * DAY + HOUR)
    scan(now + 21 * DAY)
    assert [subject for user, subject in told(Kind.CREDENTIAL_EXPIRY) if user == "director"] == [
        "Credential “Primary” of “Lab importer” expires within 14 days (Clinic)",
        "Credential “Primary” of “Lab importer” expires within 3 days (Clinic)",
        "Credential “Primary” of “Lab importer” has expired (Clinic)",
    ]
    notice = Notice.objects.filter(kind=Kind.CREDENTIAL_EXPIRY).first()
    assert notice.link == f"/e/clinic/credentials/clients/{client.client_id}/rotation/"


def test_a_webhook_client_certificate_expiry_is_told_like_a_credentials(env, people):
    ca = trustme.CA()
    issued = ca.issue_cert("webhooks.portal.test", not_after=timezone.now() + 20 * DAY)
    webhook = make_webhook(env, "http://127.0.0.1:8080/hooks", name="EHR bridge")
    key_pem = issued.private_key_pem.bytes().decode()
    set_client_certificate(webhook, issued.cert_chain_pems[0].bytes().decode(), key_pem)
    expires = ReceiverAuth.objects.get(webhook=webhook).cert_not_after

    for moment in (expires - 15 * DAY, expires - 13 * DAY, expires - 2 * DAY, expires + HOUR, expires + DAY):
        scan(moment)
    assert [subject for user, subject in told(Kind.CREDENTIAL_EXPIRY) if user == "director"] == [
        "The TLS client certificate of webhook “EHR bridge” expires within 14 days (Clinic)",
        "The TLS client certificate of webhook “EHR bridge” expires within 3 days (Clinic)",
        "The TLS client certificate of webhook “EHR bridge” has expired (Clinic)",
    ]
    assert all(key_pem.splitlines()[1] not in notice.body for notice in Notice.objects.all())
    assert Notice.objects.first().link == f"/e/clinic/webhooks/{webhook.pk}/#receiver-auth"


def test_a_finished_recovery_is_told_by_what_became_of_each_delivery(env, people, mailoutbox):
    webhook = make_failing_webhook(env, name="EHR bridge")
    job = BulkResend.objects.create(webhook=webhook, state="done", total=7, finished_at=timezone.now())
    outcomes = ["by_job", "by_job", "meanwhile", "failed_again", "payload_erased", "paused", "paused"]
    BulkResendItem.objects.bulk_create(
        BulkResendItem(job=job, delivery_id=n, outcome=outcome) for n, outcome in enumerate(outcomes)
    )

    scan()
    notice = Notice.objects.get(kind=Kind.RECOVERY_FINISHED, user=people["director"])
    assert notice.subject == "Recovery of webhook “EHR bridge” finished: 3 of 7 delivered (Clinic)"
    said = (
        "3 delivered (2 by the job, 1 meanwhile by retries); 1 failed again; "
        "3 skipped (1 payload erased, 2 webhook paused)."
    )
    assert said in notice.body
    assert notice.link == f"/e/clinic/webhooks/{webhook.pk}/recoveries/{job.pk}/"
    email = next(message for message in mailoutbox if "EHR bridge” finished" in message.subject)
    assert said in email.body


def test_a_recovery_whose_deliveries_all_arrived_says_so_in_the_singular_too(env, people):
    webhook = make_failing_webhook(env, name="EHR bridge")
    job = BulkResend.objects.create(webhook=webhook, state="done", total=1, finished_at=timezone.now())
    BulkResendItem.objects.create(job=job, delivery_id=1, outcome="meanwhile")

    scan()
    notice = Notice.objects.get(kind=Kind.RECOVERY_FINISHED, user=people["director"])
    assert notice.subject == "Recovery of webhook “EHR bridge” finished: 1 of 1 delivered (Clinic)"
    assert "The re-send of 1 delivery of webhook “EHR bridge”" in notice.body
    assert "finished at" in notice.body and "UTC: 1 delivered meanwhile by retries." in notice.body
    assert "failed" not in notice.body and "skipped" not in notice.body


def test_a_person_who_muted_a_kind_is_not_told_of_it_and_is_told_again_once_unmuted(env, people, mailoutbox):
    Mute.objects.create(user=people["director"], kind=Kind.WEBHOOK_FAILING)
    webhook = make_failing_webhook(env, name="EHR bridge")

    scan(webhook.failing_since + 2 * HOUR)
    assert [user for user, _ in told()] == ["admin"]
    assert [message.to for message in mailoutbox] == [["admin@example.org"]]

    Mute.objects.all().delete()
    scan(webhook.failing_since + 3 * HOUR)
    assert [user for user, _ in told()] == ["admin", "director"]


def test_people_without_an_email_address_are_told_in_the_portal_only(env, people, mailoutbox):
    people["director"].email = ""
    people["director"].save()
    webhook = make_failing_webhook(env, name="EHR bridge")

    scan(webhook.failing_since + 2 * HOUR)
    assert [user for user, _ in told()] == ["admin", "director"]
    assert [message.to for message in mailoutbox] == [["admin@example.org"]]


def test_an_email_that_cannot_be_sent_is_tried_again_at_the_next_scan(env, people, settings, mailoutbox):
    webhook = make_failing_webhook(env, name="EHR bridge")
    # A real SMTP connection to a closed port on this machine: refused.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2

    scan(webhook.failing_since + 2 * HOUR)
    assert Notice.objects.filter(emailed_at__isnull=True, email_attempts=1).count() == 2

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    scan(webhook.failing_since + 3 * HOUR)
    assert Notice.objects.filter(emailed_at__isnull=False, email_attempts=2).count() == 2
    assert len(mailoutbox) == 2
