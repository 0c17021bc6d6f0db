"""The webhook form takes the sending policy, shows it back when editing, and says precisely what is wrong."""

import pytest

from webhooks.models import Webhook
from webhooks.tests.factories import make_webhook

pytestmark = pytest.mark.django_db(transaction=True)
URL = "http://127.0.0.1:8009/hook"


def form(**overrides) -> dict:
    return {
        "name": "EHR",
        "url": URL,
        "event_types": ["patients.created"],
        "security_method": "secret",
        "verify_tls": "on",
        "payload_format": "full",
        "max_events_per_request": "1",
        "timeout_seconds": "15",
        "ordering": "record",
        "max_in_flight": "8",
        "max_per_second": "2.5",
        **overrides,
    }


def test_a_new_webhook_takes_its_sending_policy_from_the_form(client, director, env):
    client.post("/e/clinic/webhooks/new/", form())

    webhook = Webhook.objects.get(name="EHR")
    assert (webhook.ordering, webhook.max_in_flight, webhook.max_per_second) == ("record", 8, 2.5)


def test_the_edit_form_shows_the_policy_under_its_heading_and_a_blank_rate_removes_the_limit(client, director, env):
    webhook = make_webhook(env, URL, name="EHR", ordering="strict", max_in_flight=3, max_per_second=7.0)

    page = client.get(f"/e/clinic/webhooks/{webhook.pk}/edit/").content.decode()
    assert page.index('<h2 class="form-heading">How it sends</h2>') < page.index('id="id_ordering"')
    assert '<option value="strict" selected>' in page
    assert 'name="max_per_second" value="7.0"' in page

    client.post(f"/e/clinic/webhooks/{webhook.pk}/edit/", form(ordering="none", max_per_second=""))
    webhook.refresh_from_db()
    assert (webhook.ordering, webhook.max_in_flight, webhook.max_per_second) == ("none", 8, None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_in_flight": "0"}, "Maximum requests at a time: Ensure this value is greater than or equal to 1."),
        ({"max_in_flight": "257"}, "Maximum requests at a time: Ensure this value is less than or equal to 256."),
        ({"max_per_second": "0"}, "Maximum requests per second: Ensure this value is greater than or equal to 0.01."),
        ({"ordering": "fifo"}, "Order of delivery: Select a valid choice. fifo is not one of the available choices."),
    ],
)
def test_a_policy_out_of_bounds_is_named_and_nothing_is_saved(client, director, env, overrides, message):
    page = client.post("/e/clinic/webhooks/new/", form(**overrides)).content.decode()

    assert message in page
    assert not Webhook.objects.exists()


def test_a_post_without_the_policy_at_all_keeps_what_the_webhook_has(client, director, env):
    webhook = make_webhook(env, URL, name="EHR", ordering="record", max_in_flight=3, max_per_second=7.0)
    older_page = {
        k: v for k, v in form(name="EHR renamed").items() if k not in {"ordering", "max_in_flight", "max_per_second"}
    }

    client.post(f"/e/clinic/webhooks/{webhook.pk}/edit/", older_page)

    webhook.refresh_from_db()
    assert webhook.name == "EHR renamed"
    assert (webhook.ordering, webhook.max_in_flight, webhook.max_per_second) == ("record", 3, 7.0)
