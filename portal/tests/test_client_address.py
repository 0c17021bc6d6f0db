"""The client's address: X-Forwarded-For is believed only from trusted proxies, right-most untrusted hop first."""

import ipaddress

import pytest
import yaml

from conftest import BASE_DIR, manage_py
from credentials.tests.factories import make_client, make_credential
from environments.models import AuditEvent
from environments.tests.factories import PASSWORD, grant, make_environment, make_user
from environments.tests.reverse_proxy import portal_behind_proxy
from portal.client_address import client_address, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("remote_addr", "forwarded_for", "client"),
    [
        # No proxy in between: the peer is the client, whatever the header says.
        ("203.0.113.7", "", "203.0.113.7"),
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        # One trusted proxy: the address it appended.
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        # The client wrote its own header; the proxy appended the peer it saw: the right-most untrusted wins.
        ("10.0.0.5", "192.0.2.66, 198.51.100.1", "198.51.100.1"),
        # Two trusted proxies in a row are both skipped.
        ("10.0.0.5", "192.0.2.66, 198.51.100.1, 10.2.3.4", "198.51.100.1"),
        # Every hop trusted: the farthest one is where the request began.
        ("10.0.0.5", "10.9.9.9, 10.2.3.4", "10.9.9.9"),
        # Junk stops the walk at the last trusted hop, the nearest address anything trusted vouches for.
        ("10.0.0.5", "198.51.100.1, not-an-address", "10.0.0.5"),
        ("10.0.0.5", "198.51.100.1, not-an-address, 10.2.3.4", "10.2.3.4"),
        ("10.0.0.5", "198.51.100.1,,", "10.0.0.5"),
        ("10.0.0.5", "unknown", "10.0.0.5"),
        # Ports, as some proxies write them, are not part of the address.
        ("10.0.0.5", "198.51.100.1:4711", "198.51.100.1"),
        ("10.0.0.5", "[2001:db8::7]:4711", "2001:db8::7"),
        ("10.0.0.5", "[2001:db8::7", "10.0.0.5"),
        # IPv6 throughout, and IPv4 peers of a dual-stack socket.
        ("2001:db8:ffff::1", "2001:db8::7", "2001:db8::7"),
        ("2001:db8:ffff::1", "2001:db8::7, 2001:db8:ffff::2", "2001:db8::7"),
        ("::ffff:10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("::ffff:203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("10.0.0.5", "fe80::1%eth0", "fe80::1"),
        # A peer that is not an address (a Unix socket) is no address at all.
        ("", "198.51.100.1", None),
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(remote_addr, forwarded_for, client):
    assert client_address(remote_addr, forwarded_for, PROXIES) == client


def test_with_no_trusted_proxy_x_forwarded_for_is_never_read():
    assert client_address("10.0.0.5", "198.51.100.1", ()) == "10.0.0.5"


def test_trusted_proxies_are_networks_and_a_typo_refuses_to_start():
    assert parse_networks([" 10.0.0.0/8", "127.0.0.1", "", "::1"]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    )
    result = manage_py("check", TRUSTED_PROXIES="10.0.0.0/8,10.0.0.0/33")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Integration Tools cannot start: TRUSTED_PROXIES: '10.0.0.0/33' is not a network "
        "(CIDR such as 10.0.0.0/8 or 2001:db8::/32)."
    )


@pytest.fixture
def renaming(db):
    """A director of `clinic` and a credential to rename: renaming is audited."""
    env = make_environment("clinic")
    grant(make_user("dana"), env)
    credential, _ = make_credential(make_client(env))
    return f"/e/clinic/credentials/{credential.id}/rename/"


def renamed_from(client, path: str, **meta) -> str | None:
    client.login(username="dana", password=PASSWORD)
    assert client.post(path, {"name": "Renamed"}, **meta).status_code == 302
    return AuditEvent.objects.get(action="credential.renamed").ip


def test_the_audit_trail_records_the_address_a_trusted_proxy_forwarded(client, renaming, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    ip = renamed_from(client, renaming, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="192.0.2.66, 198.51.100.1")
    assert ip == "198.51.100.1"


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored_by_the_audit_trail(client, renaming, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert renamed_from(client, renaming, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="10.0.0.9") == "203.0.113.7"


# --- Through nginx on loopback (see reverse_proxy.py for who is who) ---------------------------------------


@pytest.fixture
def portal(transactional_db, tmp_path):
    with portal_behind_proxy(tmp_path) as portal:
        yield portal


@pytest.mark.parametrize("address", ["127.0.0.4", "::1"])
def test_through_the_proxy_a_portal_change_is_audited_with_the_address_nginx_saw(portal, address):
    env = make_environment("clinic")
    grant(make_user("dana"), env)
    credential, _ = make_credential(make_client(env))
    browser = portal.via_proxy(address)
    browser.log_in("dana", PASSWORD)

    answer = browser.post_form(f"/e/clinic/credentials/{credential.id}/rename/", {"name": "Renamed"})

    assert answer.status_code == 302
    assert AuditEvent.objects.get(action="credential.renamed").ip == address


def test_through_the_proxy_token_events_and_access_history_carry_the_clients_address(portal):
    env = make_environment("clinic")
    api_client = make_client(env)
    credential, secret = make_credential(api_client)
    grant_type = {"grant_type": "client_credentials"}

    portal.via_proxy("127.0.0.3").post_form(
        "/oauth/token", {**grant_type, "client_id": api_client.client_id, "client_secret": "guess"}
    )
    issued = portal.via_proxy("127.0.0.4").post_form(
        "/oauth/token", {**grant_type, "client_id": api_client.client_id, "client_secret": secret}
    )

    assert issued.status_code == 200
    events = dict(
        AuditEvent.objects.filter(action__in=["client.authentication_failed", "token.issued"]).values_list(
            "action", "ip"
        )
    )
    assert events == {"client.authentication_failed": "127.0.0.3", "token.issued": "127.0.0.4"}
    credential.refresh_from_db()
    assert credential.last_used_ip == "127.0.0.4"
    assert credential.access_tokens.get().issued_ip == "127.0.0.4"
    director = portal.via_proxy("127.0.0.5")
    grant(make_user("dana"), env)
    director.log_in("dana", PASSWORD)
    history = director.get("/e/clinic/credentials/access/").text
    assert "127.0.0.4" in history


def test_compose_trusts_its_own_network_as_the_proxy_and_leaves_gunicorn_out_of_it():
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    web = compose["services"]["web"]
    assert not any("forwarded" in part for part in web["command"])
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert subnet == "${PORTAL_SUBNET:-172.31.240.0/24}"
    assert web["environment"]["TRUSTED_PROXIES"] == "${TRUSTED_PROXIES:-" + subnet + "}"
    # Trusting the network's gateway is safe only while nobody but the host's proxy reaches the published port.
    assert web["ports"] == ["${WEB_BIND:-127.0.0.1}:${PORT:-8000}:8000"]
