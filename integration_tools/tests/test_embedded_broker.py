"""The embedded broker (`make run`'s default): no consumer ever reads a message being written.

kombu's own filesystem transport hands a consumer a message file it has opened but not yet
written, and the worker stops for good with a JSONDecodeError (celery/kombu#1551). These
tests use real processes and real files, as `make run` does.
"""

import multiprocessing
import threading
import time

from kombu import Connection

from integration_tools.embedded_broker import register

register()


def options(folder) -> dict:
    return {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(folder / "control"),
        "polling_interval": 0.001,
    }


def test_a_consumer_polling_while_a_large_message_is_written_gets_it_whole(tmp_path):
    # A 20 MB message takes long enough to write that a consumer polling every few
    # microseconds is certain to look at the folder mid-write; it must see nothing, then all of it.
    received, errors = [], []

    def consume():
        with Connection("embedded://", transport_options=options(tmp_path)) as connection:
            queue = connection.SimpleQueue("tasks")
            deadline = time.monotonic() + 60
            while len(received) < 3 and time.monotonic() < deadline:
                try:
                    message = queue.get(block=False)
                except queue.Empty:
                    continue
                except Exception as error:  # noqa: BLE001 - any other failure is what this test looks for
                    errors.append(repr(error))
                    continue
                received.append(len(message.payload["body"]))
                message.ack()

    consumer = threading.Thread(target=consume)
    consumer.start()
    with Connection("embedded://", transport_options=options(tmp_path)) as connection:
        queue = connection.SimpleQueue("tasks")
        for _ in range(3):
            queue.put({"body": "x" * 20_000_000})
    consumer.join(timeout=90)

    assert errors == []
    assert received == [20_000_000] * 3


def _produce(folder, producer: int, count: int) -> None:
    with Connection("embedded://", transport_options=options(folder)) as connection:
        queue = connection.SimpleQueue("tasks")
        for n in range(count):
            queue.put({"producer": producer, "n": n})


def test_eight_producer_processes_and_two_consumers_move_every_message_exactly_once(tmp_path):
    per_producer = 150
    producers = [
        multiprocessing.get_context("spawn").Process(target=_produce, args=(tmp_path, p, per_producer))
        for p in range(8)
    ]
    seen, errors = [], []
    lock = threading.Lock()
    done = threading.Event()

    def consume():
        with Connection("embedded://", transport_options=options(tmp_path)) as connection:
            queue = connection.SimpleQueue("tasks")
            while not done.is_set():
                try:
                    message = queue.get(block=True, timeout=0.2)
                except queue.Empty:
                    continue
                except Exception as error:  # noqa: BLE001
                    errors.append(repr(error))
                    continue
                with lock:
                    seen.append((message.payload["producer"], message.payload["n"]))
                message.ack()

    consumers = [threading.Thread(target=consume) for _ in range(2)]
    for thread in consumers:
        thread.start()
    for process in producers:
        process.start()
    for process in producers:
        process.join(timeout=120)
    deadline = time.monotonic() + 60
    while len(seen) < 8 * per_producer and time.monotonic() < deadline:
        time.sleep(0.1)
    done.set()
    for thread in consumers:
        thread.join(timeout=10)

    assert errors == []
    assert sorted(seen) == [(p, n) for p in range(8) for n in range(per_producer)]
    # Nothing is left behind: no message, no half-written file.
    assert [path.name for path in tmp_path.iterdir() if path.is_file()] == []
