"""The shape every Integration Tools command shares: `--json` for scripts, one line on error."""

import json
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from . import log_context
from .actor import Actor


class PortalCommand(BaseCommand):
    """A command with `--json`. Subclasses call `self.report(data, text)` once at the end.

    User errors are raised as CommandError: Django prints one line and exits 1.
    Anything else that escapes is turned into one line too (run with --traceback
    to see where it came from): an operator never gets a stack trace.

    `self.actor` is who the command's changes are attributed to: services take it as `actor`.
    """

    # How the audit trail names this command's changes. Most commands have always been recorded as
    # "system"; one that sets this to True is recorded as "manage.py <its name>". (Unifying the two would
    # change existing audit rows, which issue 20 does not do.)
    audit_as_command = False

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the result as JSON.")
        return parser

    def report(self, data: Any, text: str) -> None:
        if self.options_json:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            self.stdout.write(text)

    def execute(self, *args, **options):
        self.options_json = options.get("as_json", False)
        name = type(self).__module__.rsplit(".", 1)[-1]  # Django finds a command by its module's name
        self.actor = Actor.for_command(name, label=None if self.audit_as_command else "system")
        # Every line the command logs says which command and which run of it.
        log_context.start(command=name, run_id=uuid.uuid4().hex[:12], environment=options.get("environment"))
        try:
            return super().execute(*args, **options)
        except (CommandError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:
            if options.get("traceback"):
                raise
            detail = " ".join(str(error).split()) or "no detail"
            raise CommandError(f"unexpected {type(error).__name__}: {detail[:300]} (run with --traceback)") from None
