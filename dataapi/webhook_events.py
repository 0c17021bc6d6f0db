"""A webhook's numbered events and its status, for the token of the API client the webhook serves.

`GET /api/v1/<environment>/webhooks/<id>/events?after=<sequence>&limit=<n>` and
`GET /api/v1/<environment>/webhooks/<id>/status` (FHIR's `$events` and `$status`).
A receiver that sees 41 and then 43 reads 42 here, shaped as the webhook's own
bodies (its format and chosen fields), with `"sequence"`. Only the client a
webhook names (`Webhook.client`) may read it: any other token, or a webhook of
another environment, gets 404, so a token never learns which webhooks exist.
Numbers no longer kept answer 410: resync from the lists. The logic is
`webhooks.numbering`'s; this module only maps it to HTTP.

Registered on the Data API by `dataapi/api.py` (`api.add_router`), whose error
format and bearer authentication it shares. These paths have one segment more
than a record's (`/{environment}/{data_type}/{record_id}`), so neither takes
the other's requests.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from ninja import Query, Router, Schema
from pydantic import Field

from credentials.models import AccessToken
from portal.converters import row_id
from webhooks import numbering
from webhooks.models import Webhook

from .errors import ApiError, ErrorOut

router = Router(tags=["webhooks"])

ERRORS = {code: ErrorOut for code in (400, 401, 403, 404, 410)}


class WebhookEventsPage(Schema):
    events: list[dict[str, Any]] = Field(
        description="Events as the webhook's bodies carry them, each with its `sequence`, in sequence order"
    )
    next_cursor: str = Field(description="The last sequence returned: pass it as `after` for what follows")


class WebhookStatus(Schema):
    webhook: int
    state: str = Field(description="active, paused, disabled or unverified")
    condition: str = Field(description="healthy or failing when active; otherwise the state")
    failing_since: str | None = Field(description="ISO 8601: start of the current run of failed attempts")
    last_sequence: int = Field(description="The last number given to an event of this webhook")
    last_sequence_delivered: int = Field(description="The highest number whose delivery succeeded")
    next_retry_at: str | None = Field(description="ISO 8601: when the next retry of a failed delivery is due")
    heartbeat_minutes: int | None = Field(description="A heartbeat after this many quiet minutes; null: none")
    last_sent_at: str | None = Field(description="ISO 8601: when a request was last sent to it (to the second)")


def _webhook(request, environment: str, webhook_id: str) -> Webhook:
    """The webhook, if the token's client is the one it serves in this environment; else 404."""
    token: AccessToken = request.auth
    pk = row_id(webhook_id)
    webhook = None
    if pk is not None and token.environment.slug == environment:
        webhook = (
            Webhook.objects.select_related("environment")
            .filter(pk=pk, environment=token.environment, client_id=token.client_id)
            .first()
        )
    if webhook is None:
        raise ApiError(404, "not_found", f"no webhook “{webhook_id[:40]}” serves this token's client in {environment}")
    return webhook


@router.get(
    "/{environment}/webhooks/{webhook_id}/events",
    response={200: WebhookEventsPage, **ERRORS},
    summary="Read a webhook's numbered events",
)
def webhook_events(
    request,
    environment: str,
    webhook_id: str,
    after: int = Query(0, ge=0, le=2**62, description="The last sequence you have; 0 from the start"),
    limit: int = Query(50, ge=1, le=settings.API_PAGE_SIZE_MAX),
):
    """The events the webhook numbered after `after`, in order and without a gap: fill a gap you detected."""
    webhook = _webhook(request, environment, webhook_id)
    try:
        page = numbering.events_after(webhook, after, limit)
    except numbering.Gone as gone:
        raise ApiError(
            410,
            "events_gone",
            f"event {gone.first_missing} of this webhook is no longer kept (retention pruned it, or its payload "
            "was erased): resync the records from the lists (GET /api/v1/<environment>/<data_type>/), then go on "
            "from this webhook's last_sequence (GET …/status)",
            {"first_missing": gone.first_missing, "last_sequence": numbering.last_given(webhook.pk)},
        ) from None
    return {"events": page.events, "next_cursor": str(page.next_cursor)}


@router.get(
    "/{environment}/webhooks/{webhook_id}/status",
    response={200: WebhookStatus, **ERRORS},
    summary="Read a webhook's status",
)
def webhook_status(request, environment: str, webhook_id: str):
    """Where the webhook stands: its state, failing since, the last number given and delivered, next retry."""
    return numbering.status(_webhook(request, environment, webhook_id))
