"""Requests in flight: a receiver that hangs or drips holds a socket, not a worker thread.

A worker process has CELERY_WORKER_CONCURRENCY threads taking tasks. If each
waited for its receiver, five webhooks of one careless user pointed at a
receiver that hangs for a minute (four slots each) would hold all sixteen, and
every other environment's deliveries would wait behind them. So a request is
posted by a thread of this process's I/O pool (WEBHOOK_IO_THREADS, created as
needed; they touch no database, but to fetch a receiver's OAuth token once per expiry, on a
connection closed at once: see `authorization`), and the worker thread waits for the answer
WEBHOOK_SEND_PATIENCE_SECONDS at most, and not at all for a webhook already
failing or slowed down. If the answer has not come by then, the request is
*parked*: the worker thread goes back to its queue, and when the answer comes
(or the timeout ends it) the process's recorder thread records it and carries
on as the worker would have: the retry, the webhook's health, what else is due.

What bounds it: each webhook's cap on requests in flight and each
environment's (WEBHOOK_MAX_IN_FLIGHT_PER_ENVIRONMENT), both counted in the
database across every worker; and the pool's size per process. Only workers
park (`enable`, when the worker is ready): a command or a test that calls the
engine waits for its answer. A worker that stops with requests parked leaves
them marked in the database (`ledger.mark_sending`): each becomes an attempt
whose outcome is unknown, and is sent again.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

T = TypeVar("T")

_lock = threading.Lock()
_enabled = False
_io: concurrent.futures.ThreadPoolExecutor | None = None
_recorder: concurrent.futures.ThreadPoolExecutor | None = None
_parked: set[concurrent.futures.Future[Any]] = set()


def enable() -> None:
    """Let this process park slow requests (a worker, once ready)."""
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def _pools() -> tuple[concurrent.futures.ThreadPoolExecutor, concurrent.futures.ThreadPoolExecutor]:
    global _io, _recorder
    with _lock:
        if _io is None or _recorder is None:
            _io = concurrent.futures.ThreadPoolExecutor(settings.WEBHOOK_IO_THREADS, thread_name_prefix="webhook-io")
            # One thread records parked answers, one after another, on its own database connection.
            _recorder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="webhook-recorder")
        return _io, _recorder


def submit(post: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Start a request on an I/O thread."""
    io, _ = _pools()
    return io.submit(post)


def settled(future: concurrent.futures.Future[Any], patience: float) -> bool:
    """Whether the request ended within `patience` seconds (else the caller parks it)."""
    try:
        future.result(timeout=patience)
    except concurrent.futures.TimeoutError:
        return False
    return True


def park(future: concurrent.futures.Future[T], then: Callable[[T], None]) -> None:
    """When the request ends, run `then` with its answer on the recorder thread."""
    _, recorder = _pools()
    with _lock:
        _parked.add(future)

    def record(done: concurrent.futures.Future[T]) -> None:
        try:
            recorder.submit(_run, then, done)
        except RuntimeError:  # the interpreter is shutting down: the mark stays, the attempt is recorded later
            _forget(done)

    future.add_done_callback(record)


def _run(then: Callable[[T], None], done: concurrent.futures.Future[T]) -> None:
    close_old_connections()  # a connection broken or too old since the last answer is not reused
    try:
        then(done.result())
    except Exception:
        # The lease and the mark stay: the sweeper records the attempt as unknown and it is sent again.
        logger.exception("recording a parked webhook request failed")
    finally:
        _forget(done)


def _forget(future: concurrent.futures.Future[Any]) -> None:
    with _lock:
        _parked.discard(future)


def parked() -> int:
    """How many requests of this process are parked (answer not yet recorded)."""
    with _lock:
        return len(_parked)


def finish(timeout: float) -> int:
    """At a worker's shutdown: wait up to `timeout` for parked requests to end and be recorded; how many did not."""
    deadline = time.monotonic() + timeout
    while parked() and time.monotonic() < deadline:
        time.sleep(0.05)
    return parked()
