"""Webhook pages and commands refuse bad input clearly, and nothing stored can take a page down (issue 10)."""

import base64

import pytest

from environments.tests.bad_input import assert_command_refused, assert_refused
from environments.tests.factories import log_in_director, make_environment
from webhooks.models import BulkResend, Webhook
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db

RECEIVER = "http://127.0.0.1:9999/hooks"
NEW = ("--environment", "clinic", "--name", "X", "--events", "patients.created")


@pytest.fixture
def webhook(client):
    environment = make_environment("clinic")
    log_in_director(client, environment)
    return make_webhook(environment, RECEIVER)


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/e/clinic/webhooks/?q=a%00", "/e/clinic/deliveries/?q=%00"])
def test_a_nul_in_a_list_search_is_a_clear_400(client, webhook, path):
    assert "NUL character" in assert_refused(client.get(path))


@pytest.mark.parametrize(
    "after", ["[1e400, 1]", "[" * 1500, "[1, 99999999999999999999999]", "[NaN, 1]", '["a", 1]', "{}"]
)
@pytest.mark.parametrize("sort", ["newest", "slowest"])
def test_a_forged_history_cursor_says_the_link_is_out_of_date(client, webhook, after, sort):
    page = assert_refused(client.get(f"/e/clinic/deliveries/?sort={sort}&after={cursor_of(after)}"), 200)
    assert "page link is out of date" in page


def test_an_id_too_large_for_its_column_is_not_found(client, webhook):
    assert_refused(client.get("/e/clinic/webhooks/99999999999999999999/"), 404)
    assert_refused(client.get("/e/clinic/deliveries/99999999999999999999/"), 404)


def test_a_malformed_webhook_url_is_a_form_error(client, webhook):
    response = client.post(
        "/e/clinic/webhooks/new/",
        {
            "name": "Broken",
            "url": "http://[::1",
            "event_types": ["patients.created"],
            "security_method": "secret",
            "payload_format": "full",
            "max_events_per_request": "1",
            "timeout_seconds": "15",
        },
    )
    assert "The URL is not well formed" in assert_refused(response, 200)
    assert not Webhook.objects.filter(name="Broken").exists()


def test_a_bulk_re_send_ending_after_year_9999_in_utc_is_refused_and_the_page_still_works(client, webhook):
    response = client.post(
        f"/e/clinic/webhooks/{webhook.pk}/bulk-resend/", {"since": "", "until": "9999-12-31T23:59:59-14:00"}
    )
    assert response.status_code == 302
    page = assert_refused(client.get(f"/e/clinic/webhooks/{webhook.pk}/"), 200)
    assert "must be between the years 1970 and 9998" in page
    assert not BulkResend.objects.exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("create_webhook", *NEW, "--url", "http://[::1"), "not well formed"),
        (("create_webhook", *NEW, "--url", "http://127.0.0.1:25/"), "port 25 is not one webhooks may use"),
        (("create_webhook", *NEW, "--url", "http://127.0.0.1:9999/", "--header", "A:\u0000"), "printable text"),
        (("send_test_webhook", "²"), "give a webhook as its id"),
        (("send_test_webhook", "99999999999999999999"), "give a webhook as its id"),
        (("prune_deliveries", "--older-than", "1000000000d"), "at most 36500 days"),
        (("prune_deliveries", "--older-than", "9" * 400), "at most 36500 days"),
        (("integration_health", "--hours", "1000000000"), "between 1 and 8784"),
        (("integration_health", "--hours", "-1"), "between 1 and 8784"),
        (("resend_deliveries", "--webhook", "clinic/Hook", "--until", "9999-12-31T23:59:59-14:00"), "1970 and 9998"),
        (("resend_deliveries", "--webhook", "clinic/Hook", "--since", "0001-01-01T00:00+01:00"), "1970 and 9998"),
        (
            ("resend_deliveries", "--webhook", "clinic/Hook", "--event-type", "x" * 500),
            "the event type is 500 characters long; at most 127 are allowed",
        ),
        (("resend_deliveries", "--webhook", "clinic/Hook", "--event-type", "a\x00"), "contains a NUL character"),
    ],
)
def test_webhook_commands_refuse_bad_input_in_one_line(args, says):
    make_webhook(make_environment("clinic"), RECEIVER, name="Hook")
    assert_command_refused(*args, says=says)
    assert Webhook.objects.count() == 1 and not BulkResend.objects.exists()
