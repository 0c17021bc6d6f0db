"""Every attempt ends within its webhook's timeout, whatever the receiver does.

A per-read socket timeout is not enough: a receiver that drips one byte at a
time never trips it. These tests send to receivers that hang, drip header
bytes and stream an endless body.
"""

import pytest

from webhooks.delivery import outbound
from webhooks.tests.misbehaving import Misbehaving
from webhooks.tests.receiver import Receiver

HEADERS = {"Content-Type": "application/json"}


def send(url: str, timeout: float = 1.0) -> outbound.Response:
    return outbound.post(url, b"{}", HEADERS, timeout=timeout, verify_tls=True)


@pytest.mark.parametrize("behaviour", ["hang", "drip"])
def test_a_receiver_that_hangs_or_drips_header_bytes_is_cut_off_at_the_timeout(behaviour):
    with Misbehaving(behaviour, interval=0.2) as receiver:
        result = send(receiver.url, timeout=1.0)

    assert result.error == "timeout"
    assert result.status_code is None
    assert "1 s" in result.error_detail
    # The elapsed time is recorded, and the attempt did not outlive its timeout by more than a second.
    assert 1000 <= result.duration_ms < 2000


def test_an_endless_body_is_read_only_up_to_the_recorded_excerpt(settings):
    with Misbehaving("endless") as receiver:
        result = send(receiver.url, timeout=5.0)

    assert result.status_code == 200 and result.succeeded
    assert len(result.body) == settings.WEBHOOK_RESPONSE_BODY_MAX_BYTES
    assert result.duration_ms < 5000


def test_a_connection_kept_alive_from_an_earlier_attempt_is_under_the_new_attempts_deadline():
    with Receiver() as receiver:
        assert send(receiver.url).status_code == 200
        receiver.answer(200, delay=3)  # same keep-alive connection, now slow
        result = send(receiver.url, timeout=1.0)
        after = send(receiver.url)

    assert result.error == "timeout" and 1000 <= result.duration_ms < 2000
    # The cut-off connection is not reused: the next attempt gets a fresh one and succeeds.
    assert after.status_code == 200


def test_a_fast_receiver_is_not_affected_by_the_deadline():
    with Receiver() as receiver:
        results = [send(receiver.url) for _ in range(20)]

    assert all(result.status_code == 200 and result.body == "ok" for result in results)
