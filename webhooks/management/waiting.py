"""Commands that ask a worker to send (a test, the self-test, a verification) wait for its result here."""

import argparse

from django.core.management.base import CommandError

from ..manual_sends import command_wait_seconds, wait_for
from ..models import ManualSend

MAX_WAIT_SECONDS = 3600


def seconds(value: str) -> float:
    """`--wait`: a number of seconds from 1 to an hour."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of seconds, not {value!r}") from None
    if not 1 <= number <= MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(f"give 1 to {MAX_WAIT_SECONDS} seconds, not {value!r}")
    return number


def add_wait_argument(parser) -> None:
    parser.add_argument(
        "--wait",
        type=seconds,
        metavar="SECONDS",
        help="How long to wait for a background worker's result (default: twice the webhook's timeout, plus 30 s).",
    )


def finished(send: ManualSend, wait: float | None, what: str) -> ManualSend:
    """The send once a worker has finished it; a one-line CommandError (exit 1) when the wait runs out."""
    limit = wait if wait is not None else command_wait_seconds(send.webhook)
    done = wait_for(send, limit)
    if done is None:
        raise CommandError(
            f"no background worker sent {what} within {limit:g} s: is the Celery worker running? "
            "It stays queued and is sent when one runs."
        )
    return done
