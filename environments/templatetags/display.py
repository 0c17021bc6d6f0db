"""How values read on a page: durations in words, JSON laid out for reading."""

import json

from django import template

register = template.Library()


@register.filter
def duration(milliseconds) -> str:
    """240 ms, 1.2 s, 5 min 30 s, 2 h 3 min: the unit a person reads at a glance.

    The one way the portal shows a duration: templates use it as a filter, views and commands call it.
    """
    if milliseconds in (None, ""):
        return "—"
    ms = round(float(milliseconds))
    if ms < 1000:
        return f"{ms} ms"
    if round(ms / 100) < 600:  # below a minute once rounded to a tenth: never "60.0 s"
        return f"{ms / 1000:.1f} s"
    seconds = round(ms / 1000)
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@register.filter
def pretty_json(text: str) -> str:
    """A JSON body indented for reading (keys in their sent order); anything else as it came."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return text


@register.filter
def json_block(value) -> str:
    """A JSON value (a schema) indented for reading."""
    return json.dumps(value, indent=2, ensure_ascii=False)


# Longer texts (a 2,000-character URL in an audit event) show cut to their first CUT_TO characters, whole on demand.
LONG_TEXT = 160
CUT_TO = 100


@register.filter
def cut_long(text) -> str:
    """The start of a text too long to show whole, ending in "…"; "" when the text is short enough to show."""
    text = str(text)
    if len(text) <= LONG_TEXT:
        return ""
    return text[:CUT_TO].rstrip() + "…"


def _words(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_words(item) for item in value) if value else "none"
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:
            return f"{_words(value['from'])} → {_words(value['to'])}"
        return "; ".join(f"{key.replace('_', ' ')}: {_words(item)}" for key, item in value.items())
    return str(value)


@register.filter
def in_words(details: dict) -> list[tuple[str, str]]:
    """Audit details as (label, text) lines a person reads: names, not ids, where the record has both."""
    if not isinstance(details, dict):
        return [("details", _words(details))]
    if set(details) == {"changes"} and isinstance(details["changes"], dict):
        details = details["changes"]
    if set(details) == {"from", "to"}:
        return [("changed", _words(details))]
    lines = []
    for key, value in details.items():
        if key.endswith("_ids") and key.removesuffix("_ids") + "s" in details:
            continue  # the names beside them say the same in words
        lines.append((key.replace("_", " "), _words(value)))
    return lines
