import argparse
import signal
import threading
import time

from django.core.management.base import CommandError

from environments import stream
from environments.models import Environment
from portal.commands import PortalCommand

# Events read per query; a long-poll waits at most WAIT_SECONDS before it asks again.
PAGE = 1000
WAIT_SECONDS = 25.0


class Command(PortalCommand):
    help = (
        "Print an environment's event stream after a cursor (a position: 0 is the start) as JSON lines, one "
        'event per line, shaped as in a webhook body plus "position". --follow keeps reading until '
        "interrupted. The cursor to go on from is printed on stderr at the end."
    )

    def add_arguments(self, parser):
        parser.add_argument("--environment", required=True, help="Environment slug.")
        parser.add_argument("--after", help="Print events after this position (default: from the oldest event kept).")
        parser.add_argument("--follow", action="store_true", help="Keep printing new events until Ctrl-C.")
        parser.add_argument("--limit", help="Stop after this many events.")
        parser.add_argument("--types", help="Only these data types, comma-separated (patients,workers).")
        # For tests and scripts: follow for this many seconds, then stop (exit 0).
        parser.add_argument("--follow-for", type=float, help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        environment = Environment.objects.select_related("published_version").filter(slug=options["environment"])
        environment = environment.first()
        if environment is None:
            raise CommandError(f"unknown environment: {options['environment']}")
        after = (
            stream.pruned_through(environment.pk)
            if options["after"] is None
            else _whole(options["after"], "--after", 'a position such as 0 or the last event\'s "position"')
        )
        limit = None if options["limit"] is None else _whole(options["limit"], "--limit", "1 or more", least=1)
        data_types = _data_types(environment, options["types"])
        follow_for = options["follow_for"]
        follow = options["follow"] or follow_for is not None
        deadline = None if follow_for is None else time.monotonic() + follow_for
        reader = _Reader(self, environment, after, data_types)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, reader.interrupt)
        try:
            reader.run(limit, follow, deadline)
        except stream.CursorExpired as expired:
            raise CommandError(
                f"the cursor {expired.after} is older than {environment.slug}'s event retention (events through "
                f"position {expired.pruned} were pruned): resync from the Data API's lists, then go on with "
                f"--after {stream.head(environment.pk)} (the stream's head now, before the resync)"
            ) from None
        except KeyboardInterrupt:
            pass  # Ctrl-C ends a --follow: a normal way to stop, exit 0
        self.stderr.write(f"next cursor: {reader.after}")


class _Reader:
    """Prints pages of the stream, remembering where the next read starts.

    Ctrl-C while a page is being printed lets the page finish first, so the cursor it ends with is exactly
    after the last event printed: a script that goes on from it neither misses nor repeats one."""

    def __init__(self, command: Command, environment: Environment, after: int, data_types: list[str] | None):
        self.command, self.environment, self.after, self.data_types = command, environment, after, data_types
        self.printing = self.stopping = False

    def interrupt(self, signum, frame) -> None:
        if self.printing:
            self.stopping = True
        else:
            raise KeyboardInterrupt

    def _print(self, page: stream.Page) -> None:
        self.printing = True
        for event in page.events:
            self.command.stdout.write(event)
        self.command.stdout.flush()  # a script reading the pipe gets each page as it comes
        self.after = page.next_position
        self.printing = False

    def run(self, limit: int | None, follow: bool, deadline: float | None) -> None:
        printed = 0
        while limit is None or printed < limit:
            size = PAGE if limit is None else min(PAGE, limit - printed)
            if follow:
                remaining = WAIT_SECONDS if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    return
                page = stream.wait_for_events(
                    self.environment, self.after, size, self.data_types, min(WAIT_SECONDS, remaining)
                )
            else:
                page = stream.read(self.environment, self.after, size, self.data_types)
            self._print(page)
            printed += len(page.events)
            if self.stopping or (not follow and len(page.events) < size):
                return  # interrupted, or the head of the stream


def _whole(text: str, option: str, what: str, *, least: int = 0) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 18) or int(text) < least:
        raise CommandError(f"{option} takes a whole number ({what}), not “{text[:40]}”")
    return int(text)


def _data_types(environment: Environment, text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CommandError("--types is empty: name data types (patients,workers), or leave --types out")
    unknown = [name for name in names if name not in environment.data_types]
    if unknown:
        known = ", ".join(environment.data_types) or "none published"
        raise CommandError(
            f"not a data type of {environment.slug}: {', '.join(unknown)[:200]} (its data types: {known})"
        )
    return names
