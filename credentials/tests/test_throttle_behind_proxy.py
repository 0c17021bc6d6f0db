"""Behind a reverse proxy, the token endpoint's throttle counts each client's own address, not the proxy's.

nginx runs in front of gunicorn on loopback (environments/tests/reverse_proxy.py): the portal trusts
nginx's address only, and each client below is a real peer of nginx at an address of its own.
"""

import base64
from urllib.parse import quote

import pytest

from credentials.models import AccessToken, AuthFailure
from credentials.tests.factories import make_client, make_credential
from environments.models import AuditEvent
from environments.tests.factories import make_environment
from environments.tests.reverse_proxy import portal_behind_proxy

GRANT = {"grant_type": "client_credentials"}
ATTACKER, REAL_CLIENT, OTHER_CLIENT = "127.0.0.3", "127.0.0.4", "::1"


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{quote(client_id)}:{quote(secret)}".encode()).decode()}


@pytest.fixture
def portal(transactional_db, tmp_path):
    # Failure windows are aligned to the clock: a day's window keeps a run from crossing into a new one
    # (where the counts, and so the summary rows, would start again).
    with portal_behind_proxy(tmp_path, OAUTH_FAILURE_WINDOW_SECONDS="86400") as portal:
        yield portal


@pytest.fixture
def apps(transactional_db):
    """Two API clients in two environments, each with its secret."""
    clinic = make_client(make_environment("clinic"))
    lab = make_client(make_environment("lab"))
    return [(clinic, make_credential(clinic)[1]), (lab, make_credential(lab)[1])]


def test_a_thousand_bad_token_requests_from_one_address_leave_other_clients_unaffected(portal, apps):
    (clinic, clinic_secret), (lab, lab_secret) = apps
    attacker = portal.via_proxy(ATTACKER)
    for n in range(1000):
        target = clinic if n % 2 else lab
        assert attacker.post_form("/oauth/token", GRANT, basic(target.client_id, "guess")).status_code in (401, 429)

    refused = attacker.post_form("/oauth/token", GRANT, basic(clinic.client_id, clinic_secret))
    assert refused.status_code == 429
    for address in (REAL_CLIENT, OTHER_CLIENT):
        for app, secret in ((clinic, clinic_secret), (lab, lab_secret)):
            answer = portal.via_proxy(address).post_form("/oauth/token", GRANT, basic(app.client_id, secret))
            assert answer.status_code == 200, (address, app.client_id, answer.text)
            assert answer.json()["token_type"] == "Bearer"

    assert set(AuthFailure.objects.exclude(reason=AuthFailure.Reason.THROTTLED).values_list("ip", flat=True)) == {
        ATTACKER
    }
    assert sorted(AccessToken.objects.values_list("issued_ip", flat=True)) == sorted([REAL_CLIENT, OTHER_CLIENT] * 2)
    clinic_credential = clinic.credentials.get()
    assert clinic_credential.last_used_ip in (REAL_CLIENT, OTHER_CLIENT)
    # Every failure is counted, but the audit trail has a few summary rows, not a thousand: per client_id and
    # reason, the 1st and 10th wrong secret and the 1st, 10th and 100th refusal of the window.
    assert AuthFailure.objects.filter(ip=ATTACKER).count() == 1001
    assert AuditEvent.objects.filter(action="client.authentication_failed", ip=ATTACKER).count() <= 10


def test_a_client_cannot_pass_its_failures_to_another_address_by_writing_x_forwarded_for(portal, apps):
    (clinic, clinic_secret), _ = apps
    attacker = portal.via_proxy(ATTACKER)
    # The attacker claims to be the real client: nginx appends the address it really saw, and that is what counts.
    for _ in range(12):
        attacker.post_form("/oauth/token", GRANT, {**basic(clinic.client_id, "guess"), "X-Forwarded-For": REAL_CLIENT})

    assert set(AuthFailure.objects.values_list("ip", flat=True)) == {ATTACKER}
    answer = portal.via_proxy(REAL_CLIENT).post_form("/oauth/token", GRANT, basic(clinic.client_id, clinic_secret))
    assert answer.status_code == 200


def test_a_forwarded_for_header_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(portal, apps):
    (clinic, _), _ = apps
    # Straight to gunicorn, skipping nginx: the peer is 127.0.0.1, which the portal does not trust.
    portal.direct().post_form(
        "/oauth/token", GRANT, {**basic(clinic.client_id, "guess"), "X-Forwarded-For": "192.0.2.1"}
    )

    assert list(AuthFailure.objects.values_list("ip", flat=True)) == ["127.0.0.1"]
