"""Beat on every worker host runs the schedule once: only the holder of the database's lease sends."""

import datetime

import pytest
from django.utils import timezone

from conftest import kill_process_group, wait_for
from environments.beat_lease import hold

SENT = "Scheduler: Sending due task"


@pytest.mark.django_db
def test_one_beat_holds_the_lease_until_it_runs_out_then_another_takes_it():
    now = timezone.now()
    later = lambda seconds: now + datetime.timedelta(seconds=seconds)  # noqa: E731

    assert hold("host-a", 30, now)
    assert not hold("host-b", 30, later(1))
    assert hold("host-a", 30, later(20))  # renewed: runs to 50 s now
    assert not hold("host-b", 30, later(45))
    assert hold("host-b", 30, later(51))
    assert not hold("host-a", 30, later(52))


def _sent(worker) -> int:
    return worker.log_path.read_text().count(SENT)


def test_two_workers_with_beat_send_the_schedule_once_and_the_second_takes_over_when_the_first_dies(start_worker):
    workers = [start_worker(), start_worker()]  # with BEAT_LEASE_SECONDS=3 (conftest.WORKER_TEST_ENV)
    wait_for(lambda: any(_sent(worker) for worker in workers), timeout=30, message="a beat to send")
    # Sweeps are due every second: both beats would send many by now if both did.
    wait_for(lambda: max(_sent(worker) for worker in workers) >= 5, timeout=30, message="five sends")
    holder, other = sorted(workers, key=_sent, reverse=True)
    assert _sent(other) == 0, "both beats sent the schedule"

    kill_process_group(holder)
    # The lease runs out 3 s after its last renewal; the other beat looks every second.
    wait_for(lambda: _sent(other) >= 2, timeout=15, message="the second beat to take over")
