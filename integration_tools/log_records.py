"""How requests the portal refuses on purpose appear in the log."""

import logging


class RefusalWithoutTraceback(logging.Filter):
    """A 403 is the portal keeping someone out, not an error: one line saying who was refused and why.

    Django logs each `PermissionDenied` with its traceback, which names only our
    own permission check. The line keeps what an operator looks for (the path,
    the user, the refusal's sentence) and drops the stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403 and record.exc_info:
            refusal = str(record.exc_info[1]) or "no reason given"
            user = getattr(getattr(record, "request", None), "user", None)
            who = user.get_username() if user is not None and user.is_authenticated else "anonymous"
            record.msg = f"{record.getMessage()} (user {who}: {refusal})"
            record.args = ()
            record.exc_info = record.exc_text = None
        return True
