"""The events feed and the changes listing: what a syncing integrator reads to prove it has every change.

Both read positions of the environment's stream (`environments.stream`), which
are given in commit order: a reader that has read up to P and asks again
"after P" misses nothing that committed meanwhile and reads nothing twice.

- `GET /api/v1/<env>/events?after=&limit=&wait=`: the events of the data types
  the token may read, shaped as webhook bodies carry them, plus "position".
  `wait` long-polls for up to 30 s; at most EVENTS_LONG_POLLS_PER_PROCESS
  long-polls wait at once in one web process, and one per client, so waiting
  readers never take the threads other requests need: a long-poll beyond those
  is answered at once.
- `GET /api/v1/<env>/<type>/changes?since=`: the records of one type changed
  after a position, each once at its latest change, deleted ones as tombstones.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from ninja import Query, Router, Schema
from pydantic import Field

from credentials.models import AccessToken
from credentials.oauth import BearerError
from environments import stream
from environments.models import Environment, Record
from environments.records import record_representation

from .errors import ERRORS, ApiError

router = Router(tags=["events"])

MAX_EVENTS_PER_PAGE = 1000
# What a cursor of the stream looks like: a position, a whole number (the document says so; anything else is
# a 400 naming the parameter).
POSITION_PATTERN = "^[0-9]{1,18}$"


class EventOut(Schema):
    id: str = Field(description="evt_… : the event's id, the same as in webhook bodies")
    type: str = Field(description="<data type>.created | .updated | .deleted")
    timestamp: str = Field(description="When the change was made, ISO 8601, UTC")
    environment: str
    position: int = Field(description="Its place in the environment's stream, in commit order")
    data: dict[str, Any] = Field(description="The record as the change left it (as webhook bodies carry it)")


class EventPage(Schema):
    events: list[EventOut]
    next_cursor: str = Field(description="Pass as `after` to read on; the same when nothing new came")


class RecordNow(Schema):
    id: str
    data_type: str
    external_id: str | None
    created_at: str
    updated_at: str
    fields: dict[str, Any]


class ChangeOut(Schema):
    position: int = Field(description="The position of the record's latest change read here")
    deleted: bool
    id: str = Field(description="UUID of the record")
    data_type: str
    external_id: str | None
    record: RecordNow | None = Field(description="The record now; null when deleted")


class ChangesPage(Schema):
    changes: list[ChangeOut]
    next_since: str = Field(description="Pass as `since` to read the changes after these")
    has_more: bool


@router.get(
    "/{environment}/events",
    response={200: EventPage, **ERRORS, 410: ERRORS[400]},
    summary="Read the events feed",
)
def events(
    request,
    environment: str,
    after: str | None = Query(
        None,
        description="A `next_cursor` (or a position); omit to start at the oldest kept",
        pattern=POSITION_PATTERN,
    ),
    limit: int = Query(100, ge=1, le=MAX_EVENTS_PER_PAGE),
    wait: float = Query(0, ge=0, le=settings.EVENTS_WAIT_MAX_SECONDS, description="Long-poll: seconds to wait"),
):
    """Events after `after` in position order; with `wait`, answered as soon as one arrives."""
    token: AccessToken = request.auth
    env = _environment(token, environment)
    readable = _readable(token, env)
    position = None if after is None or after == "" else _position(after, "after")
    with _long_poll_slot(token.client_id, wait) as may_wait:
        try:
            page = stream.wait_for_events(env, position, limit, readable, wait if may_wait else 0)
        except stream.CursorExpired as error:
            raise _expired(error) from None
    body = f'{{"events":[{",".join(page.events)}],"next_cursor":"{page.next_position}"}}'
    return HttpResponse(body, content_type="application/json")


def changes_listing(token: AccessToken, environment: str, data_type: str, since: str, limit: int) -> dict[str, Any]:
    """Each record changed after `since` once, at its latest change, in position order; deletions as tombstones.
    (Routed in api.py, ahead of the record routes, so `changes` is never taken for a record id.)"""
    env = _environment(token, environment)
    _require(token, env, data_type)
    try:
        found = stream.changes(env, data_type, _position(since, "since"), limit)
    except stream.CursorExpired as error:
        raise _expired(error) from None
    records = {record.id: record for record in Record.objects.filter(pk__in=[c.record_id for c in found.changes])}
    listed = [_change(change, records.get(change.record_id), data_type) for change in found.changes]
    return {
        "changes": [item for item in listed if item is not None],
        "next_since": str(found.next_position),
        "has_more": found.has_more,
    }


def _change(change: stream.Change, record: Record | None, data_type: str) -> dict[str, Any] | None:
    if change.deleted:
        return {
            "position": change.position,
            "deleted": True,
            "id": str(change.record_id),
            "data_type": data_type,
            "external_id": change.external_id,
            "record": None,
        }
    if record is None:
        return None  # deleted since: its tombstone comes at the deletion's position
    representation = record_representation(record)
    return {
        "position": change.position,
        "deleted": False,
        "id": representation["id"],
        "data_type": data_type,
        "external_id": record.external_id,
        "record": representation,
    }


# --- Helpers ------------------------------------------------------------------


def _environment(token: AccessToken, slug: str) -> Environment:
    if token.environment.slug != slug:
        raise ApiError(404, "not_found", f"no environment “{slug}” for this token")
    return token.environment


def _readable(token: AccessToken, environment: Environment) -> list[str]:
    readable = [name for name in environment.data_types if f"{name}:read" in token.scopes]
    if not readable:
        raise BearerError(
            "insufficient_scope",
            "reading events needs the read scope of at least one data type",
            status=403,
            scope=" ".join(f"{name}:read" for name in environment.data_types),
        )
    return readable


def _require(token: AccessToken, environment: Environment, data_type: str) -> None:
    if data_type not in environment.data_types:
        raise ApiError(404, "unknown_data_type", f"“{data_type}” is not a data type of {environment.slug}")
    scope = f"{data_type}:read"
    if scope not in token.scopes:
        raise BearerError("insufficient_scope", f"this request needs the scope {scope}", status=403, scope=scope)


def _position(value: str | None, name: str) -> int:
    if value is None or value == "":
        return 0
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise ApiError(400, "invalid_cursor", f"`{name}` must be a position this API returned (a whole number)")
    return int(value)


def _expired(error: stream.CursorExpired) -> ApiError:
    return ApiError(
        410,
        "cursor_expired",
        f"the events after position {error.after} are no longer kept (kept from position {error.pruned + 1}): "
        "resync by listing each data type from the start, noting `stream_position` of the first page, "
        "then read on after that position",
        {"pruned_through": error.pruned},
    )


_waiting_clients: set[int] = set()
_waiting_lock = threading.Lock()


@contextlib.contextmanager
def _long_poll_slot(client_id: int, wait: float) -> Iterator[bool]:
    """Whether this request may wait: fewer than EVENTS_LONG_POLLS_PER_PROCESS wait in this process, and no
    other long-poll of its client does."""
    if wait <= 0:
        yield False
        return
    with _waiting_lock:
        taken = client_id not in _waiting_clients and len(_waiting_clients) < settings.EVENTS_LONG_POLLS_PER_PROCESS
        if taken:
            _waiting_clients.add(client_id)
    try:
        yield taken
    finally:
        if taken:
            with _waiting_lock:
                _waiting_clients.discard(client_id)
