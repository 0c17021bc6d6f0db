"""The token endpoint's failure throttle: guessing is slowed, and nobody can lock the real client out."""

import base64
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import requests

from credentials.models import AccessToken, AuthFailure
from credentials.tests.factories import form_post, make_client, make_credential
from environments.models import AuditEvent
from environments.tests.factories import make_environment

GRANT = {"grant_type": "client_credentials"}
ATTACKER, REAL_CLIENT = "203.0.113.66", "198.51.100.4"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote(client_id)}:{quote(secret)}".encode()).decode()


@pytest.fixture
def app(db):
    api_client = make_client(make_environment("clinic"))
    _, secret = make_credential(api_client)
    return api_client, secret


def token_from(client, address: str, client_id: str, secret: str) -> int:
    response = form_post(
        client, "/oauth/token", GRANT, REMOTE_ADDR=address, headers={"Authorization": basic(client_id, secret)}
    )
    return response.status_code


def test_wrong_secrets_from_one_address_do_not_lock_the_real_client_out(client, app):
    api_client, secret = app
    for _ in range(25):
        token_from(client, ATTACKER, api_client.client_id, "guess")

    assert token_from(client, ATTACKER, api_client.client_id, secret) == 429
    assert token_from(client, REAL_CLIENT, api_client.client_id, secret) == 200
    assert AccessToken.objects.filter(issued_ip=REAL_CLIENT).count() == 1


def test_a_flood_of_bad_token_requests_adds_a_few_audit_rows_each_with_its_count(client, app, settings):
    # Windows are fixed (aligned to the epoch): a day-long one keeps the test's few seconds inside one.
    settings.OAUTH_FAILURE_WINDOW_SECONDS = 86400
    api_client, secret = app
    for _ in range(110):
        token_from(client, ATTACKER, api_client.client_id, "guess")
    assert token_from(client, REAL_CLIENT, api_client.client_id, secret) == 200
    # Every failure is still counted (the throttle and the Overview read these)...
    assert AuthFailure.objects.filter(ip=ATTACKER).count() == 110
    # ...and the trail has the 1st and 10th wrong secret, then the 1st, 10th and 100th refusal of the window.
    rows = AuditEvent.objects.filter(action="client.authentication_failed", ip=ATTACKER).order_by("id")
    assert [(row.details["reason"], row.details["in_window_so_far"]) for row in rows] == [
        ("bad_secret", 1),
        ("bad_secret", 10),
        ("throttled", 1),
        ("throttled", 10),
        ("throttled", 100),
    ]


def test_a_new_made_up_client_id_each_request_still_adds_only_a_few_audit_rows(client, db, settings):
    settings.OAUTH_FAILURE_WINDOW_SECONDS = 86400
    for n in range(120):
        token_from(client, ATTACKER, f"made-up-{n}", "guess")
    assert AuthFailure.objects.filter(ip=ATTACKER).count() == 120
    # Unknown client_ids count as one client: the 1st and 10th unknown one, then the 1st and 10th refusal.
    rows = AuditEvent.objects.filter(action="client.authentication_failed", ip=ATTACKER).order_by("id")
    assert [(row.details["reason"], row.details["in_window_so_far"]) for row in rows] == [
        ("unknown_client", 1),
        ("unknown_client", 10),
        ("throttled", 1),
        ("throttled", 10),
    ]
    assert rows[1].details["client_id"] == "made-up-9"  # each row still names the id tried


def test_a_client_that_got_a_token_from_an_address_keeps_getting_them_while_someone_there_guesses(client, app):
    api_client, secret = app
    assert token_from(client, REAL_CLIENT, api_client.client_id, secret) == 200
    # Someone behind the same address (a shared NAT, the same proxy) guesses: wrong secrets are refused...
    statuses = {token_from(client, REAL_CLIENT, api_client.client_id, "guess") for _ in range(40)}
    assert statuses == {401, 429}
    # ...and the real client, whose secret is right, is not.
    assert token_from(client, REAL_CLIENT, api_client.client_id, secret) == 200
    # An address that never obtained a token has no such allowance.
    for _ in range(10):
        token_from(client, ATTACKER, api_client.client_id, "guess")
    assert token_from(client, ATTACKER, api_client.client_id, secret) == 429


def test_the_limit_per_client_and_address_lets_exactly_the_limit_through(client, app, settings):
    settings.OAUTH_MAX_FAILURES_PER_CLIENT = 10
    api_client, _ = app
    statuses = [token_from(client, ATTACKER, api_client.client_id, "guess") for _ in range(12)]
    assert statuses == [401] * 10 + [429] * 2


def test_an_address_failing_across_clients_is_refused_for_all(client, app, settings):
    settings.OAUTH_MAX_FAILURES_PER_IP = 3
    api_client, secret = app
    for n in range(3):
        token_from(client, ATTACKER, f"itc_guess{n}", "x")
    assert token_from(client, ATTACKER, api_client.client_id, secret) == 429
    assert token_from(client, REAL_CLIENT, api_client.client_id, secret) == 200


def test_guessing_from_many_addresses_gets_one_guess_per_address_once_the_client_total_is_reached(
    client, app, settings
):
    settings.OAUTH_MAX_FAILURES_PER_CLIENT_TOTAL = 5
    api_client, secret = app
    botnet = [f"192.0.2.{n}" for n in range(1, 9)]
    first_guesses = [token_from(client, address, api_client.client_id, "guess") for address in botnet]
    second_guesses = [token_from(client, address, api_client.client_id, "guess") for address in botnet]

    assert first_guesses == [401] * 8  # an address that has not failed is never refused
    assert second_guesses == [429] * 8  # past the total, an address that failed is
    assert token_from(client, REAL_CLIENT, api_client.client_id, secret) == 200
    assert AuthFailure.objects.exclude(reason="throttled").count() == 8


def test_the_limit_is_exact_under_concurrent_guessing(transactional_db, live_server, settings):
    settings.OAUTH_MAX_FAILURES_PER_CLIENT = 10
    api_client = make_client(make_environment("clinic"))
    make_credential(api_client)

    def guess(_):
        response = requests.post(
            f"{live_server.url}/oauth/token",
            data=GRANT,
            headers={"Authorization": basic(api_client.client_id, "guess")},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(guess, range(30)))

    assert sorted(statuses).count(401) == 10
    assert statuses.count(429) == 20
    assert AuthFailure.objects.filter(reason="bad_secret").count() == 10
