"""The bare baseline the delivery benchmark compares against: a Celery task that signs and POSTs, nothing else.

No database, no retries, no history: the cost floor of "a Celery worker sends a
signed webhook". Loaded into the benchmark's worker with `-I benchmarks.bare_baseline`.
"""

import base64
import hashlib
import hmac
import time

import requests
from celery import shared_task

_session = requests.Session()


@shared_task(name="bench.bare_sign_and_post", ignore_result=True)
def sign_and_post(url: str, message_id: str, body: str, key_b64: str) -> None:
    timestamp = int(time.time())
    key = base64.b64decode(key_b64)
    signed = f"{message_id}.{timestamp}.{body}".encode()
    signature = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }
    _session.post(url, data=body.encode(), headers=headers, timeout=15, allow_redirects=False)
