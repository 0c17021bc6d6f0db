"""The correlation fields of log lines: which request, task, command or delivery a line is about.

Whoever starts a piece of work binds its fields (a middleware the request id and environment, Celery's task
signals the task, a command its name, the delivery engine the delivery it sends); `CorrelationFilter` puts
them on every record logged meanwhile in that thread or context, and LOG_FORMAT=json writes them as fields.
Values are ids, slugs and names of code only: never a secret, a token, a header value or a payload.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_fields: ContextVar[dict[str, str]] = ContextVar("log_fields", default={})  # noqa: B039 - replaced, never mutated
# Attributes a record never carries to the output, whoever passed them in `extra`.
SECRET_WORDS = ("authorization", "token", "secret", "password", "header", "payload", "body", "cookie")


def bind(**fields: object) -> None:
    """Add fields to the current context (a None value is left out)."""
    _fields.set({**_fields.get(), **{key: str(value) for key, value in fields.items() if value is not None}})


def start(**fields: object) -> None:
    """Start a new piece of work with only these fields (a task, on a worker thread that ran others before)."""
    _fields.set({})
    bind(**fields)


def current() -> dict[str, str]:
    return dict(_fields.get())


@contextmanager
def scope(**fields: object) -> Iterator[None]:
    """These fields for the duration of the block, then the ones before."""
    token = _fields.set(_fields.get())
    bind(**fields)
    try:
        yield
    finally:
        _fields.reset(token)


def bind_delivery(*, webhook_id: int, delivery_id: int, message_id: str, environment: str) -> None:
    """The fields of delivery work: the webhook, the delivery, its `webhook-id` header and the environment."""
    bind(webhook_id=webhook_id, delivery_id=delivery_id, environment=environment, **{"webhook-id": message_id})


class CorrelationFilter(logging.Filter):
    """Puts the current context's fields on each record, and drops any attribute named like a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        for key in [key for key in vars(record) if any(word in key.lower() for word in SECRET_WORDS)]:
            delattr(record, key)
        return True
