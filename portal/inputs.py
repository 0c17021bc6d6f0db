"""JSON and text from outside: what we accept, and the sentence that says why we refused the rest.

Python's `json` takes input that PostgreSQL, UTF-8 or our own code cannot hold:
`NaN` and `Infinity` (not JSON at all), `1e400` (a float that overflows to
infinity), integers thousands of digits long, nesting that exhausts the
recursion limit, NUL characters (PostgreSQL text and jsonb refuse them) and
lone surrogates (not encodable as UTF-8). Every door that takes JSON — the
Data API, draft schemas, `publish_configuration`, page cursors — parses it
here, so each of those is refused before it reaches a database or a
traceback, with the place it was found.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from django.db.models import Field

MAX_DEPTH = 32
# Signed 64 bits: what PostgreSQL's bigint and most clients' integers hold.
MAX_INTEGER = 2**63 - 1
MIN_INTEGER = -(2**63)


class JsonRefused(ValueError):
    """Input that is not JSON we accept; the message says what and where, in a sentence fragment."""


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None: NUL characters and lone surrogates are refused."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (\\ud800–\\udfff), which is not valid Unicode"
    return None


def loads(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse `raw` as strict JSON and check every value (`check`); raise `JsonRefused` otherwise."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except JsonRefused:
        raise
    except RecursionError:
        raise JsonRefused(f"nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as error:
        raise JsonRefused(f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    except UnicodeDecodeError:
        raise JsonRefused("not UTF-8 text") from None
    except ValueError:
        # Integers longer than Python's int_max_str_digits (4,300) land here.
        raise JsonRefused("a number has too many digits") from None
    check(value, max_depth=max_depth)
    return value


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise `JsonRefused` if `value` (already parsed) holds anything `loads` would refuse."""
    # An explicit stack, not recursion: the input decides the depth.
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise JsonRefused(f"nested more than {max_depth} levels deep (at {where or 'the top'})")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    problem = text_problem(key)
                    if problem:
                        raise JsonRefused(f"a key at {where or 'the top'} {problem}")
                stack.append((child, _path(where, key), depth + 1))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise JsonRefused(f"the value at {where or 'the top'} {problem}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                raise JsonRefused(f"the integer at {where or 'the top'} is outside the 64-bit range")
        elif isinstance(item, float) and not math.isfinite(item):
            raise JsonRefused(f"the number at {where or 'the top'} is too large to represent")


def _refuse_constant(name: str) -> Any:
    raise JsonRefused(f"{name} is not a JSON number")


def _path(where: str, key: Any) -> str:
    step = f"[{key}]" if isinstance(key, int) else str(key)
    if not where:
        return step
    return f"{where}{step}" if isinstance(key, int) else f"{where}.{step}"


def length_problem(value: str, model: Any, field: str) -> str | None:
    """Why `value` does not fit the model's text column `field`, or None."""
    limit = model._meta.get_field(field).max_length
    if limit is not None and len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    return text_problem(value)


def username_problem(username: str) -> str | None:
    """Why `username` cannot name a portal user (length, characters), or None."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    model = get_user_model()
    if not username:
        return "is empty"
    problem = length_problem(username, model, model.USERNAME_FIELD)
    if problem:
        return problem
    try:
        cast("Field[Any, Any]", model._meta.get_field(model.USERNAME_FIELD)).run_validators(username)
    except ValidationError as error:
        return error.messages[0].rstrip(".").replace("Enter a valid username", "is not a valid username")
    return None


# Every moment we store or compare must survive conversion to UTC and back into
# Python: 9999-12-31T23:59-14:00 is year 10000 in UTC, which PostgreSQL stores
# and Python then cannot read, breaking every page that shows it.
EARLIEST_YEAR = 1970
LATEST_YEAR = 9998


def moment_problem(moment: datetime.datetime) -> str | None:
    """Why `moment` cannot be used as a time (out of range once in UTC), or None."""
    try:
        utc = moment.astimezone(datetime.UTC) if moment.tzinfo else moment
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST_YEAR <= utc.year <= LATEST_YEAR:
        return f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}"
    return None


def range_problem(since: datetime.datetime | None, until: datetime.datetime | None) -> str | None:
    """Why a From/To range selects nothing because it is the wrong way round, or None."""
    if since and until and since > until:
        return f"“To” ({until:%Y-%m-%d %H:%M}) is before “From” ({since:%Y-%m-%d %H:%M}): swap them"
    return None


def validate_moment(moment: datetime.datetime | None) -> None:
    """A form-field validator for `moment_problem`."""
    from django.core.exceptions import ValidationError

    if moment is not None and (problem := moment_problem(moment)):
        raise ValidationError(f"The time {problem}.")
