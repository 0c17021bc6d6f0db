"""An integration in Test (a webhook and the client it serves), for the promotion tests; `test_and_live` is in
conftest."""

import json

from credentials.tests.factories import make_client
from webhooks.models import Webhook
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Answer


def answering_the_challenge(body: bytes, headers: dict) -> Answer:
    event = json.loads(body)
    return Answer(status=200, body=json.dumps({"challenge": event["data"].get("challenge", "")}).encode())


def integration(test, url: str) -> Webhook:
    app = make_client(test, name="Care app", scopes=["patients:read", "visits:read"])
    return make_webhook(
        test,
        url,
        name="Care receiver",
        event_types=["patients.created", "patients.updated", "visits.created"],
        payload_fields={"patients": ["first_name", "nickname"]},
        extra_headers={"X-Team": "care-ops"},
        client_id=app.client_id,
    )
