"""A receiver's OAuth 2.0 token shared by every worker: one fetch per expiry, not one per process."""

import time

from conftest import wait_for
from environments.records import create_record
from environments.tests.factories import make_environment
from webhooks.models import Delivery
from webhooks.receiver_auth import ReceiverAuthFields, set_receiver_auth
from webhooks.tests.authorization_server import AuthorizationServer
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

SECRET = "client-secret-5b21e8d0aa"


def succeeded(webhook) -> int:
    return Delivery.objects.filter(webhook=webhook, status=Delivery.Status.SUCCEEDED).count()


def test_two_workers_fetch_one_token_per_expiry_and_log_neither_token_nor_secret(start_worker):
    workers = [start_worker(), start_worker(beat=False)]
    environment = make_environment()
    with AuthorizationServer() as server, Receiver(judge=server.protects) as receiver:
        server.register("portal", secret=SECRET, auth_method="client_secret_post")
        server.state.expires_in = 6
        server.state.delay = 0.3  # a slow token endpoint: workers that need a token meanwhile wait for it
        webhook = make_webhook(environment, receiver.url, event_types=["patients.created"], max_in_flight=8)
        fields = ReceiverAuthFields(
            method="oauth2-secret",
            token_url=server.token_url,
            client_id="portal",
            client_secret=SECRET,
            secret_method="client_secret_post",
        )
        set_receiver_auth(webhook, fields)

        for n in range(20):
            create_record(environment, "patients", {"first_name": f"P{n}", "last_name": "A"})
        wait_for(lambda: succeeded(webhook) == 20, timeout=60, message="20 deliveries")
        assert server.issued == 1, "one token for both workers"

        time.sleep(6)  # the token expires
        for n in range(20):
            create_record(environment, "patients", {"first_name": f"Q{n}", "last_name": "B"})
        wait_for(lambda: succeeded(webhook) == 40, timeout=60, message="20 more deliveries")
        assert server.issued == 2, "one more token after the expiry, for both workers"

    assert all(request.headers["Authorization"].startswith("Bearer ") for request in receiver.requests)
    assert all(" received" in worker.log_path.read_text() for worker in workers), "both workers sent"
    logs = "".join(worker.log_path.read_text() for worker in workers)
    for secret in [SECRET, *server.state.every_token]:
        assert secret not in logs
