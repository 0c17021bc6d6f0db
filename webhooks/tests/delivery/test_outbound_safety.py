"""Outgoing requests reach only public addresses unless WEBHOOK_ALLOWED_NETWORKS admits others.

The check is made on the resolved address when connecting, so a URL that was
fine when saved but resolves elsewhere at send time is still refused.
"""

import ipaddress

import pytest
from django.utils import timezone

from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.configure import WebhookFields, WebhookInvalid, create_webhook
from webhooks.delivery.outbound import InvalidDestination, address_refusal, check_url, port_refusal
from webhooks.delivery.sending import attempt_delivery
from webhooks.models import Delivery, Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://localhost:8000/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.20/hook", "private"),
        ("http://0.0.0.0/hook", "not a public address"),
        ("http://224.0.0.1/hook", "multicast"),
    ],
)
def test_urls_that_resolve_to_internal_addresses_are_refused_when_saved(settings, url, reason):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(InvalidDestination, match=reason):
        check_url(url)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("2002:7f00:1::1", "a loopback address (127.0.0.1) inside an IPv6 address"),  # 6to4
        ("2002:a00:1::1", "a private address (10.0.0.1) inside an IPv6 address"),
        ("64:ff9b::7f00:1", "a loopback address (127.0.0.1) inside an IPv6 address"),  # NAT64
        ("64:ff9b::a9fe:a9fe", "link-local address (cloud metadata services live there) (169.254.169.254)"),
        ("64:ff9b:1::a00:1", "a local-use NAT64 address"),
        ("::127.0.0.1", "a loopback address (127.0.0.1) inside an IPv6 address"),  # IPv4-compatible
        ("::ffff:10.0.0.1", "a private address (10.0.0.1)"),  # IPv4-mapped
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "(127.0.0.1) inside an IPv6 address"),  # Teredo client
        ("fec0::1", "a site-local address"),
        ("2001:db8::1", "a documentation address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("198.18.0.1", "a benchmarking address"),
        ("192.0.2.1", "a documentation address"),
        ("198.51.100.1", "a documentation address"),
        ("203.0.113.1", "a documentation address"),
        ("240.0.0.1", "a reserved address"),
    ],
)
def test_every_way_an_address_can_reach_inside_is_refused(settings, address, reason):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert reason in address_refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "2002:5db8:d70e::1"])
def test_public_addresses_stay_reachable(settings, address):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_only_the_allowed_ports_are_used(settings):
    settings.WEBHOOK_ALLOWED_PORTS = ["80", "443", "1024-65535"]
    assert port_refusal(443) is None and port_refusal(8443) is None and port_refusal(80) is None
    assert "port 25 is not one webhooks may use" in port_refusal(25)
    assert "port 22" in port_refusal(22)


def test_the_allow_list_admits_exactly_its_networks(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    check_url("http://127.0.0.1:8000/hook")
    with pytest.raises(InvalidDestination, match="private"):
        check_url("http://10.0.0.1/hook")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/hook", "must start with"),
        ("http://user:pw@127.0.0.1/hook", "user name or password"),
        ("http:///hook", "no host"),
        ("http://127.0.0.1:99999/hook", "Port out of range"),
        ("http://[::1", "not well formed"),
    ],
)
def test_malformed_urls_get_a_sentence(url, message):
    with pytest.raises(InvalidDestination, match=message):
        check_url(url)


def test_plain_http_needs_the_development_setting(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    with pytest.raises(InvalidDestination, match="https://"):
        check_url("http://127.0.0.1:8000/hook")


def test_the_portal_form_errors_name_the_field():
    environment = make_environment()
    with pytest.raises(WebhookInvalid) as refused:
        create_webhook(
            environment,
            WebhookFields(name="Metadata", url="http://169.254.169.254/", event_types=["patients.created"]),
        )
    assert "169.254.169.254" in refused.value.errors["url"]
    assert not Webhook.objects.exists()


def _stored_with_url(environment, url: str) -> Webhook:
    """A webhook whose URL changed after its check, as DNS rebinding would make it look."""
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url)
    Webhook.objects.filter(pk=webhook.pk).update(url=url)
    return webhook


@pytest.mark.parametrize("address", ["169.254.169.254", "10.0.0.1"])
def test_internal_addresses_are_refused_at_send_time_without_connecting(address):
    environment = make_environment()
    webhook = _stored_with_url(environment, f"http://{address}/hook")
    create_record(environment, "patients", {"first_name": "A", "last_name": "B"})
    delivery = Delivery.objects.get(webhook=webhook)

    started = timezone.now()
    attempt = attempt_delivery(delivery.pk)

    assert attempt.error == "blocked_address"
    assert address in attempt.error_detail
    # Connecting to an unroutable address would have waited for the connect timeout.
    assert (timezone.now() - started).total_seconds() < 1


def test_a_name_resolving_to_loopback_is_refused_at_send_time_once_the_allow_list_is_gone(settings):
    environment = make_environment()
    with Receiver() as receiver:
        webhook = make_webhook(environment, receiver.url.replace("127.0.0.1", "localhost"))
        create_record(environment, "patients", {"first_name": "A", "last_name": "B"})
        settings.WEBHOOK_ALLOWED_NETWORKS = []
        attempt = attempt_delivery(Delivery.objects.get(webhook=webhook).pk)
    assert attempt.error == "blocked_address" and "loopback" in attempt.error_detail
    assert receiver.requests == []


def test_a_redirect_to_the_metadata_service_is_not_followed():
    environment = make_environment()
    with Receiver() as receiver:
        receiver.answer(307, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        webhook = make_webhook(environment, receiver.url)
        create_record(environment, "patients", {"first_name": "A", "last_name": "B"})
        attempt = attempt_delivery(Delivery.objects.get(webhook=webhook).pk)
    assert attempt.status_code == 307 and not attempt.succeeded
    assert len(receiver.requests) == 1
