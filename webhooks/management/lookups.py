"""Finding webhooks and reading times and durations as ops type them, with one-line errors."""

import datetime
import re

from django.core.management.base import CommandError
from django.utils import timezone

from portal.converters import row_id
from portal.inputs import moment_problem

from ..configure import signing_secrets_in_use
from ..models import Webhook
from ..options import audit_view

# Longer than anything a retention or a report window needs, and far inside what
# `now - duration` can compute.
MAX_DURATION = datetime.timedelta(days=36500)


def webhook(reference: str) -> Webhook:
    """A webhook by id, or by `<environment-slug>/<name>`."""
    found = Webhook.objects.select_related("environment")
    if (pk := row_id(reference)) is not None:
        found = found.filter(pk=pk).first()
    elif "/" in reference:
        slug, _, name = reference.partition("/")
        found = found.filter(environment__slug=slug, name=name).first()
    else:
        raise CommandError(f"give a webhook as its id or as <environment>/<name>, not {reference!r}")
    if found is None:
        raise CommandError(f"unknown webhook: {reference}")
    return found


def moment(value: str | None, option: str) -> datetime.datetime | None:
    """An ISO 8601 date or date-time; UTC when no offset is given."""
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{option} must be an ISO 8601 date or date-time such as 2026-11-20T08:00, not {value!r}"
        ) from None
    parsed = parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=datetime.UTC)
    problem = moment_problem(parsed)
    if problem:
        raise CommandError(f"{option} {problem}, not {value!r}")
    return parsed


def duration(value: str, option: str) -> datetime.timedelta:
    """`90d`, `12h`, `30m` or a plain number of days; at most MAX_DURATION."""
    match = re.fullmatch(r"([0-9]+)([dhm]?)", value.strip())
    if not match:
        raise CommandError(f"{option} must look like 90d, 12h or 30m, not {value!r}")
    unit = {"d": "days", "h": "hours", "m": "minutes"}[match[2] or "d"]
    limit = MAX_DURATION // datetime.timedelta(**{unit: 1})
    # Compared as digits first: int() of a 5,000-digit string is itself refused.
    digits = match[1].lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        raise CommandError(f"{option} may be at most {MAX_DURATION.days} days, not {value!r}")
    age = datetime.timedelta(**{unit: int(digits)})
    return age


def describe(item: Webhook) -> dict:
    """A webhook as `--json` output shows it: never a key."""
    return {
        "id": item.pk,
        "environment": item.environment.slug,
        "name": item.name,
        "url": item.url,
        "state": item.state,
        "disabled_reason": item.disabled_reason or None,
        "event_types": item.event_types,
        "security_method": item.security_method,
        "signing_credential_ids": [str(pk) for pk in item.signing_credentials.values_list("pk", flat=True)],
        # The API client it serves (its client_id), whose token reads its numbered events and status.
        "client": item.client.client_id if item.client else None,
        **audit_view(item),
        **(
            {"public_keys": [key.public_key for key in signing_secrets_in_use(item)]}
            if item.security_method == Webhook.SecurityMethod.ED25519
            else {}
        ),
        "last_triggered_at": item.last_triggered_at.isoformat() if item.last_triggered_at else None,
    }
