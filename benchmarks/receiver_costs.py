"""What the trusted-receiver features cost per delivery: chosen fields, Ed25519 signing, payload erasure.

Verification and the self-test cost nothing per delivery (one challenge per webhook and URL; two test
requests on demand), so they are not timed here.
"""

from __future__ import annotations

import datetime
import time
import uuid


def _per_call_us(run, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        run()
    return round((time.perf_counter() - started) / calls * 1e6, 2)


def measure(renders: int, erase_deliveries: int) -> dict:
    from django.db import connection

    from benchmarks.history_pages import _seed
    from environments.tests.factories import make_environment
    from portal.actor import Actor
    from webhooks import erasure
    from webhooks.delivery import bodies, ledger, signing
    from webhooks.models import Delivery, Webhook
    from webhooks.tests.factories import make_webhook

    event = ledger.EventRow(
        uid=uuid.uuid4(),
        type="patients.updated",
        occurred_at=datetime.datetime.now(datetime.UTC),
        environment_slug="bench",
        data={
            "id": str(uuid.uuid4()),
            "data_type": "patients",
            "external_id": "p-1",
            "created_at": "2026-01-15T09:30:00Z",
            "updated_at": "2026-01-15T09:30:00Z",
            "fields": {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "birth_date": "1815-12-10",
                "email": "ada@example.org",
                "status": "active",
            },
            "changed_fields": ["email"],
        },
    )

    class Shape:
        payload_format = Webhook.PayloadFormat.FULL
        max_events_per_request = 1
        payload_fields: dict = {}

    class Chosen(Shape):
        payload_fields = {"patients": ["first_name", "status"]}

    body = bodies.render([event], Shape)
    hmac_key = signing.key_of_signing_secret(signing.new_signing_secret())
    ed25519_key = signing.key_of_private_key(signing.new_key_pair()[0])

    environment = make_environment(f"bench-erase-{uuid.uuid4().hex[:6]}")
    webhook = make_webhook(environment, "http://127.0.0.1:9999/hooks")
    _seed(connection, webhook, erase_deliveries)
    count = Delivery.objects.filter(webhook=webhook).count()
    started = time.perf_counter()
    erased = erasure.erase_payloads(erasure.Scope(environment, webhook=webhook), actor=Actor.for_task("bench"))
    erase_seconds = time.perf_counter() - started
    return {
        "render_all_fields_us": _per_call_us(lambda: bodies.render([event], Shape), renders),
        "render_chosen_fields_us": _per_call_us(lambda: bodies.render([event], Chosen), renders),
        "sign_hmac_us": _per_call_us(lambda: signing.signature(hmac_key, "msg_1", 1, body), renders),
        "sign_ed25519_us": _per_call_us(lambda: signing.signature(ed25519_key, "msg_1", 1, body), renders),
        "erased_deliveries": erased,
        "seeded_deliveries": count,
        "erase_us_per_delivery": round(erase_seconds / max(erased, 1) * 1e6, 1),
        "erase_batch": erasure.BATCH,
    }
