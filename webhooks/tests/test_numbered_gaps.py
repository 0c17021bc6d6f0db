"""An integrator detects each delivery it lost by its number and fills it from the webhook's events endpoint.

Everything is real: a worker sends to a receiver over HTTP, and the integrator
obtains a token with requests-oauthlib (client credentials) from the portal
served over HTTP, as the README tells it to.
"""

import json
import threading

import pytest
import requests
from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from conftest import wait_for
from credentials.tests.factories import make_client, make_credential
from environments.records import create_record
from webhooks.models import Delivery
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer, Receiver

PATIENT = {"status": "active", "last_name": "Lovelace", "birth_date": "1985-12-10"}
CHANGES = 35


class LossyIntegrator:
    """A receiver's application that loses every tenth delivery it is sent: it answers 200 and keeps nothing
    (a crash after the answer, a queue that dropped it). The sender sees a success: nothing is retried."""

    def __init__(self):
        self.kept: dict[int, dict] = {}
        self.received = 0
        self._lock = threading.Lock()

    def __call__(self, body: bytes, headers: dict) -> Answer:
        with self._lock:
            self.received += 1
            if self.received % 10:
                event = json.loads(body)
                self.kept[event["sequence"]] = event
        return Answer(200)

    def gaps(self, last_sequence: int) -> list[int]:
        """The numbers it never got, up to the webhook's last one (which the status says)."""
        return [number for number in range(1, last_sequence + 1) if number not in self.kept]


def session_for(base_url: str, client_id: str, secret: str) -> OAuth2Session:
    session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
    session.fetch_token(token_url=f"{base_url}/oauth/token", auth=HTTPBasicAuth(client_id, secret), timeout=10)
    return session


def fill(session: OAuth2Session, base: str, gaps: list[int]) -> dict[int, dict]:
    """Each missing number, read from the webhook's events after the number before it."""
    filled = {}
    for number in gaps:
        page = session.get(f"{base}/events", params={"after": number - 1, "limit": 1}, timeout=10).json()
        [event] = page["events"]
        assert page["next_cursor"] == str(number)
        filled[event["sequence"]] = event
    return filled


@pytest.mark.django_db(transaction=True)
def test_a_receiver_that_loses_every_tenth_delivery_detects_each_gap_and_fills_it(
    start_worker, live_server, env, monkeypatch
):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the live server speaks plain HTTP on loopback
    app = make_client(env, scopes=["patients:read"])
    _, secret = make_credential(app)
    integrator = LossyIntegrator()
    with Receiver(judge=integrator) as receiver:
        webhook = make_webhook(env, receiver.url, event_types=["patients.created"], client_id=app.client_id)
        start_worker()
        for index in range(CHANGES):
            create_record(env, "patients", {**PATIENT, "first_name": f"Patient {index}"})
        wait_for(
            lambda: Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED).count() == CHANGES,
            timeout=60,
            message="every delivery",
        )
    sent = {json.loads(request.body)["sequence"]: json.loads(request.body) for request in receiver.requests}
    assert sorted(sent) == list(range(1, CHANGES + 1))

    session = session_for(live_server.url, app.client_id, secret)
    base = f"{live_server.url}/api/v1/{env.slug}/webhooks/{webhook.pk}"
    status = session.get(f"{base}/status", timeout=10).json()
    assert status["last_sequence"] == status["last_sequence_delivered"] == CHANGES
    gaps = integrator.gaps(status["last_sequence"])
    assert len(gaps) == CHANGES // 10  # the receiver's application lost 10, 20 and 30 (in whatever order)
    integrator.kept.update(fill(session, base, gaps))
    assert integrator.kept == sent, "every event, exactly as the webhook sent it"

    stranger = make_client(env, scopes=["patients:read"])
    _, stranger_secret = make_credential(stranger)
    other = session_for(live_server.url, stranger.client_id, stranger_secret).get(f"{base}/events", timeout=10)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert requests.get(f"{base}/status", timeout=10).status_code == 401
