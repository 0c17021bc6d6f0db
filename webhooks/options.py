"""The options of a webhook (rule 8 and beyond), declared once.

Each option says how it is checked, how a form field and a command flag take
it, and how the audit trail and `--json` output show it. Adding an option is a
model field plus one typed attribute of `OptionValues` here: `configure.py`
(apply, validate, audit snapshots), the form, `create_webhook` and `describe`
derive from `OPTIONS`, and the sending path reads the option's column by its
name into a `delivery.ledger.Target`, which has the same attributes.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from django import forms
from django.conf import settings

from .models import Webhook

# Headers we set ourselves, or that would change how the request is framed or routed.
RESERVED_HEADERS = {
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]{0,1024}$")
MAX_EXTRA_HEADERS = 10


class OptionInvalid(ValueError):
    """A value an option cannot take, with the sentence saying why."""


def parse_headers(text: str) -> dict[str, str | None]:
    """Parse `Name: value` lines (as typed in a form or passed to a command).

    A line with no value (`Name:`) keeps the value the webhook has (None here):
    values are write-only, so the edit form shows the names alone.
    """
    headers: dict[str, str | None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise OptionInvalid(f"line {number} is not “Name: value”")
        headers[name.strip()] = value.strip() or None
    return headers


def _keep_header_values(new: dict[str, str | None], old: dict[str, str] | None) -> dict[str, str | None]:
    old = old or {}
    return {name: old.get(name) if value is None else value for name, value in new.items()}


def _changed_header_values(old: dict[str, str], new: dict[str, str]) -> list[str]:
    return sorted(name for name in new if name in old and old[name] != new[name])


def _check_headers(headers: dict[str, str]) -> str | None:
    if len(headers) > MAX_EXTRA_HEADERS:
        return f"at most {MAX_EXTRA_HEADERS} extra headers"
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            return f"“{name[:40]}” is not a valid header name (letters, digits and - only, no spaces)"
        if name.lower() in RESERVED_HEADERS:
            return f"{name} is set by Integration Tools and cannot be overridden"
        if value is None:
            return f"give {name} a value (a blank value only keeps the value an existing header has)"
        if not isinstance(value, str) or not _HEADER_VALUE.match(value):
            return f"the value of {name} must be printable text of at most 1024 characters, on one line"
    return None


def _check_payload_fields(value) -> str | None:
    if not isinstance(value, dict):
        return "a mapping of data type to field names"
    for data_type, names in value.items():
        if not isinstance(data_type, str) or not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return "a mapping of data type to field names"
    return None


ALL_FIELDS = "*"

MAX_IN_FLIGHT_MAX = 256
MAX_PER_SECOND_MIN = 0.01
MAX_PER_SECOND_MAX = 1000.0


def _check_rate(value) -> str | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not MAX_PER_SECOND_MIN <= value <= MAX_PER_SECOND_MAX
    ):
        return f"between {MAX_PER_SECOND_MIN:g} and {MAX_PER_SECOND_MAX:g} requests per second, or none"
    return None


def _rate_flag(text: str) -> float:
    """`--max-per-second 10`, `0.5`, or `none` (no limit, as is 0)."""
    if text.strip().lower() == "none":
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of requests per second, or none, not {text[:40]!r}") from None


HEARTBEAT_MINUTES_MAX = 1440


def _check_heartbeat(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= HEARTBEAT_MINUTES_MAX:
        return f"between 1 and {HEARTBEAT_MINUTES_MAX} minutes, or none (no heartbeats)"
    return None


def _minutes_flag(text: str) -> int | None:
    """`--heartbeat-minutes 15`, or `none` (no heartbeats)."""
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of minutes, or none, not {text[:40]!r}") from None


def describe_policy(values: OptionValues) -> str:
    """How a webhook sends, in one sentence: “in order per record, at most 4 at a time, 10/s”."""
    orders: dict[str, str] = {
        Webhook.Ordering.NONE: "in parallel",
        Webhook.Ordering.RECORD: "in order per record",
        Webhook.Ordering.STRICT: "strictly in order, one at a time",
    }
    parts = [orders[values.ordering]]
    if values.ordering != Webhook.Ordering.STRICT:
        parts.append(f"at most {values.max_in_flight} at a time")
    if values.max_per_second:
        parts.append(f"{values.max_per_second:g}/s")
    return ", ".join(parts)


def payload_fields_from_choices(chosen: list[str] | None, data_types: list[str] | None = None) -> dict[str, list[str]]:
    """Form choices (`patients.*` for every field, now and later; `patients.first_name` for one) to the option.

    A data type of `data_types` with nothing ticked sends no field at all: unticking is never "everything".
    """
    chosen = chosen or []
    everything = {value.partition(".")[0] for value in chosen if value.endswith(f".{ALL_FIELDS}")}
    picked: dict[str, list[str]] = {data_type: [] for data_type in data_types or [] if data_type not in everything}
    for value in chosen:
        data_type, _, name = value.partition(".")
        if name != ALL_FIELDS and data_type not in everything:
            picked.setdefault(data_type, []).append(name)
    return {data_type: sorted(names) for data_type, names in picked.items()}


def payload_fields_from_flags(lines: list[str]) -> dict[str, list[str]]:
    """`--fields patients=first_name,last_name` (repeat per data type) to the option."""
    chosen: dict[str, list[str]] = {}
    for line in lines:
        data_type, equals, names = line.partition("=")
        if not equals or not data_type.strip():
            raise OptionInvalid(f"“{line[:60]}” is not “data_type=field,field”")
        chosen[data_type.strip()] = sorted({name.strip() for name in names.split(",") if name.strip()})
    return chosen


def _in_range(low: int, high: Callable[[], int], unit: str = "") -> Callable[[Any], str | None]:
    def check(value) -> str | None:
        top = high()
        if not isinstance(value, int) or not low <= value <= top:
            return f"between {low} and {top}{unit}"
        return None

    return check


def _one_of(choices, sentence: str) -> Callable[[Any], str | None]:
    return lambda value: None if value in choices else sentence


@dataclass(frozen=True, kw_only=True)
class Option:
    """One webhook option: its model field, checks, form field, command flag and audit form."""

    # The attribute of `OptionValues` that declares it (and the model field's name).
    name: str = ""
    label: str
    help: str
    default: Callable[[], Any]
    check: Callable[[Any], str | None]
    form_field: Callable[[], forms.Field]
    flag: str
    flag_options: dict = field(default_factory=dict)
    # Form and command values to the option's value, and back for a form's initial data.
    from_form: Callable[[Any], Any] = lambda value: value
    to_form: Callable[[Any], Any] = lambda value: value
    from_flag: Callable[[Any], Any] = lambda value: value
    # What the audit trail and --json show (never a secret).
    audit_name: str = ""
    audit_value: Callable[[Any], Any] = lambda value: value
    # For write-only values: the new value with blanks filled from the stored one, and
    # what changed in a way the audit trail may show (when `audit_value` hides it).
    keep: Callable[[Any, Any], Any] = lambda new, old: new
    hidden_changes: Callable[[Any, Any], Any] | None = None

    def audit_key(self) -> str:
        return self.audit_name or self.name


_OPTION = "option"


def declare(option: Option) -> Any:
    """An option as a field of `OptionValues`: it defaults to the option's default, and carries the option."""
    return field(default_factory=option.default, metadata={_OPTION: option})


@dataclass(kw_only=True, eq=False, repr=False)
class OptionValues:
    """A webhook's options, each declared once, here: its name and type, and how it is checked, taken and shown.

    What a user sets (`configure.WebhookFields`) and what sending reads
    (`delivery.ledger.Target`) have them as these attributes, as the model
    (`Webhook`) has them as its fields; a test checks that each is a model field
    of a matching type.
    """

    verify_tls: bool = declare(
        Option(
            label="Verify TLS certificates",
            help="Refuse receivers whose certificate does not verify (leave on outside development).",
            default=lambda: True,
            check=lambda value: None if isinstance(value, bool) else "on or off",
            form_field=lambda: forms.BooleanField(required=False, initial=True),
            flag="--no-verify-tls",
            flag_options={"action": "store_true", "help": "Do not verify the receiver's TLS certificate."},
            from_flag=lambda no_verify: not no_verify,
        )
    )

    payload_format: str = declare(
        Option(
            label="Payload format",
            help="Full sends the record as it is after the change; thin sends its id only.",
            default=lambda: Webhook.PayloadFormat.FULL,
            check=_one_of(Webhook.PayloadFormat.values, "choose full or thin"),
            form_field=lambda: forms.ChoiceField(
                choices=Webhook.PayloadFormat.choices, initial=Webhook.PayloadFormat.FULL
            ),
            flag="--payload-format",
            flag_options={"choices": Webhook.PayloadFormat.values, "default": Webhook.PayloadFormat.FULL},
        )
    )

    payload_fields: dict[str, list[str]] = declare(
        Option(
            label="Fields in full payloads",
            help="Minimum necessary: per data type, send every field (those added later too) or only the ones "
            "ticked. A data type with chosen fields never gains a field added to the schema later.",
            default=dict,
            check=_check_payload_fields,
            # Choices come from the environment's schema: the webhook form fills them in.
            form_field=lambda: forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple),
            flag="--fields",
            flag_options={
                "action": "append",
                "default": [],
                "help": "Only these fields of a data type in full payloads: data_type=field,field (repeat).",
            },
            from_form=payload_fields_from_choices,
            to_form=lambda chosen: chosen,  # the form turns the mapping into its choices (it knows the schema)
            from_flag=payload_fields_from_flags,
        )
    )

    max_events_per_request: int = declare(
        Option(
            label="Maximum events per request",
            help='1 sends one event per request; more sends batches as {"events": [...]}.',
            default=lambda: 1,
            check=_in_range(1, lambda: settings.WEBHOOK_MAX_EVENTS_PER_REQUEST_MAX),
            form_field=lambda: forms.IntegerField(
                min_value=1, max_value=settings.WEBHOOK_MAX_EVENTS_PER_REQUEST_MAX, initial=1
            ),
            flag="--max-events",
            flag_options={"type": int, "default": 1, "help": "Maximum events per request (batching)."},
        )
    )

    timeout_seconds: int = declare(
        Option(
            label="Timeout (seconds)",
            help="The whole request, from connecting to the end of the response, must finish within this.",
            default=lambda: settings.WEBHOOK_TIMEOUT_SECONDS,
            check=_in_range(1, lambda: settings.WEBHOOK_TIMEOUT_SECONDS_MAX, " seconds"),
            form_field=lambda: forms.IntegerField(
                min_value=1, max_value=settings.WEBHOOK_TIMEOUT_SECONDS_MAX, initial=settings.WEBHOOK_TIMEOUT_SECONDS
            ),
            flag="--timeout",
            flag_options={"type": int, "default": 0, "help": "Seconds for the whole request (0: the default)."},
            from_flag=lambda seconds: seconds or settings.WEBHOOK_TIMEOUT_SECONDS,
        )
    )

    ordering: str = declare(
        Option(
            label="Order of delivery",
            help="None sends in parallel (fastest). Per record sends one record's changes one at a time, oldest "
            "first, and different records in parallel; a change waiting for a retry holds its record's later "
            "changes. Strict sends one request at a time, in commit order: a failing change holds everything.",
            default=lambda: Webhook.Ordering.NONE,
            check=_one_of(Webhook.Ordering.values, "choose none, record or strict"),
            # Not required: a form posted by a script written before the option existed keeps sending in parallel.
            form_field=lambda: forms.ChoiceField(
                choices=Webhook.Ordering.choices, initial=Webhook.Ordering.NONE, required=False
            ),
            from_form=lambda value: value or Webhook.Ordering.NONE,
            flag="--ordering",
            flag_options={
                "choices": Webhook.Ordering.values,
                "default": Webhook.Ordering.NONE,
                "help": "none (parallel), record (in order per record) or strict (one at a time, in order).",
            },
        )
    )

    max_in_flight: int = declare(
        Option(
            label="Maximum requests at a time",
            help="How many requests this receiver is sent at once, across every worker (1 to 256).",
            default=lambda: settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK,
            check=_in_range(1, lambda: MAX_IN_FLIGHT_MAX),
            form_field=lambda: forms.IntegerField(
                min_value=1,
                max_value=MAX_IN_FLIGHT_MAX,
                initial=settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK,
                required=False,
            ),
            from_form=lambda count: count or settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK,
            flag="--max-in-flight",
            flag_options={"type": int, "default": 0, "help": "Requests in flight at once, 1 to 256 (0: the default)."},
            from_flag=lambda count: count or settings.WEBHOOK_MAX_IN_FLIGHT_PER_WEBHOOK,
        )
    )

    max_per_second: float | None = declare(
        Option(
            label="Maximum requests per second",
            help="Leave blank for no limit. Requests are spaced evenly, across every worker; a receiver's 429 "
            "with Retry-After slows it down further, without counting as a failure.",
            default=lambda: None,
            check=_check_rate,
            form_field=lambda: forms.FloatField(
                required=False, min_value=MAX_PER_SECOND_MIN, max_value=MAX_PER_SECOND_MAX
            ),
            flag="--max-per-second",
            flag_options={
                "type": _rate_flag,
                "default": 0,
                "help": "Requests per second at most (0 or none: no limit).",
            },
            from_flag=lambda rate: rate or None,
        )
    )

    heartbeat_minutes: int | None = declare(
        Option(
            label="Heartbeat every (minutes)",
            help="When nothing was sent for this long, send a signed webhook.heartbeat carrying the last number "
            "sent, so the receiver can tell quiet from broken (1 to 1440). Leave blank for none.",
            default=lambda: None,
            check=_check_heartbeat,
            form_field=lambda: forms.IntegerField(required=False, min_value=1, max_value=HEARTBEAT_MINUTES_MAX),
            flag="--heartbeat-minutes",
            flag_options={
                "type": _minutes_flag,
                "default": None,
                "help": "Send a webhook.heartbeat after this many quiet minutes, 1 to 1440 (none: no heartbeats).",
            },
        )
    )

    # Until checked, a header typed as `Name:` for a new header has no value (None): `check` refuses it.
    extra_headers: dict[str, str] = declare(
        Option(
            label="Extra headers",
            help="One “Name: value” per line, sent with every request. Values are encrypted and never shown "
            "again: leave an existing header as “Name:” to keep its value.",
            default=dict,
            check=_check_headers,
            form_field=lambda: forms.CharField(
                required=False, widget=forms.Textarea(attrs={"rows": 3, "placeholder": "X-Team: care-ops"})
            ),
            flag="--header",
            flag_options={"action": "append", "default": [], "help": 'Extra header "Name: value" (repeat).'},
            from_form=lambda text: parse_headers(text or ""),
            to_form=lambda headers: "\n".join(f"{name}:" for name in headers),
            from_flag=lambda lines: parse_headers("\n".join(lines)),
            # Header values may be a receiver's credentials: the trail keeps their names only.
            audit_name="extra_header_names",
            audit_value=sorted,
            keep=_keep_header_values,
            hidden_changes=_changed_header_values,
        )
    )


OPTIONS: list[Option] = [replace(each.metadata[_OPTION], name=each.name) for each in fields(OptionValues)]

OPTION_NAMES = [option.name for option in OPTIONS]


def defaults() -> dict[str, Any]:
    """Every option at its default."""
    return {option.name: option.default() for option in OPTIONS}


def problems(values: OptionValues) -> dict[str, str]:
    """Each option whose value does not hold, with the sentence saying why."""
    errors = {}
    for option in OPTIONS:
        problem = option.check(getattr(values, option.name))
        if problem:
            errors[option.name] = problem
    return errors


def audit_view(source) -> dict[str, Any]:
    """The options of a webhook (or of fields to apply) as the audit trail and --json show them."""
    return {option.audit_key(): option.audit_value(getattr(source, option.name)) for option in OPTIONS}
