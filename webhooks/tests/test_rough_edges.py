"""Rough edges of the portal (issue 27), each closed and kept closed."""

import pytest

from credentials.services import CredentialError, create_client, rename_client
from environments.tests.factories import grant, make_environment
from webhooks import manual
from webhooks.configure import WebhookInvalid
from webhooks.models import Delivery
from webhooks.tests.factories import carried_out, make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db


def test_a_webhook_name_differing_only_in_case_is_refused(env):
    make_webhook(env, "http://127.0.0.1:9201/a", name="Lab receiver")
    with pytest.raises(WebhookInvalid) as refused:
        make_webhook(env, "http://127.0.0.1:9201/b", name="lab RECEIVER")
    assert refused.value.errors == {"name": "Clinic already has a webhook named “Lab receiver”"}


def test_a_client_name_differing_only_in_case_is_refused_on_create_and_rename(env):
    create_client(env, "Lab app", ["patients:read"])
    other = create_client(env, "Other app", ["patients:read"])
    with pytest.raises(CredentialError, match="Clinic already has a client named “Lab app”"):
        create_client(env, "lab APP", ["patients:read"])
    with pytest.raises(CredentialError, match="Clinic already has a client named “Lab app”"):
        rename_client(other, "LAB app")
    rename_client(other, "OTHER APP")  # its own name in another case is fine


def test_a_program_director_with_one_environment_gets_no_switcher(env, client, director):
    assert 'id="environment-switcher"' not in client.get("/e/clinic/webhooks/").text
    grant(director, make_environment("ward"))
    assert 'id="environment-switcher"' in client.get("/e/clinic/webhooks/").text


def test_no_webhook_yet_shows_a_call_to_action_not_a_search_box(env, client, director):
    page = client.get("/e/clinic/webhooks/").text
    assert 'role="search"' not in page
    assert '<a class="button" href="/e/clinic/webhooks/new/">Create the first webhook</a>' in page
    make_webhook(env, "http://127.0.0.1:9201/a")
    assert 'role="search"' in client.get("/e/clinic/webhooks/").text


def test_no_client_yet_shows_a_call_to_action_not_a_search_box(env, client, director):
    page = client.get("/e/clinic/credentials/").text
    assert 'role="search"' not in page
    assert '<a class="button" href="/e/clinic/credentials/clients/new/">Create the first client</a>' in page
    create_client(env, "Lab app", ["patients:read"])
    page = client.get("/e/clinic/credentials/").text
    assert "Create the first client" not in page and "No credentials yet" in page
    assert 'role="search"' not in page  # nothing to search yet


def test_the_overview_says_in_one_line_what_the_product_does(env, client, director):
    assert (
        "Integration Tools lets other systems read Clinic's data through the Data API and hear about every change "
        "through signed webhooks." in client.get("/e/clinic/").text
    )


def test_a_re_send_from_the_history_list_stays_on_the_list(env, client, director):
    with Receiver() as receiver:
        webhook = make_webhook(env, receiver.url)
        carried_out(manual.send_test(webhook))
        delivery = Delivery.objects.get()
        listing = f"/e/clinic/webhooks/{webhook.pk}/deliveries/?status=succeeded"
        page = client.get(listing).text
        assert f'<input type="hidden" name="next" value="{listing.replace("&", "&amp;")}">' in page
        answer = client.post(f"/e/clinic/deliveries/{delivery.pk}/resend/", {"next": listing}, follow=True)
    assert answer.redirect_chain[-1][0] == listing
    assert f"Re-send of {delivery.message_id} asked for." in answer.text
    # Anywhere else is not a place to go back to.
    elsewhere = client.post(f"/e/clinic/deliveries/{delivery.pk}/resend/", {"next": "https://evil.example/"})
    assert elsewhere.url.startswith(f"/e/clinic/deliveries/{delivery.pk}/")
