"""The Data API: `/api/v1/<environment>/<data type>/[<id>]`, bearer-protected, described by OpenAPI 3.

django-ninja does the routing, parameter and envelope validation (pydantic) and
generates the OpenAPI document from the same declarations, so the document
cannot drift from the code. Field values are checked against the environment's
published schema by `environments.records`, the same code the portal uses.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import logging
import re
import uuid
from typing import Annotated, Any

from django.conf import settings
from django.db.models import Q
from django.http import Http404, HttpRequest, JsonResponse
from ninja import NinjaAPI, Query, Schema, Status
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer
from pydantic import BeforeValidator, ConfigDict, Field

from credentials.models import AccessToken
from credentials.oauth import BearerError, resolve_bearer
from environments import stream
from environments.models import Environment, Record
from environments.records import (
    DuplicateExternalId,
    RecordInvalid,
    create_record,
    delete_record,
    record_representation,
    update_record,
)
from portal import inputs

from .errors import ERRORS, ApiError
from .feed import POSITION_PATTERN, ChangesPage, changes_listing
from .feed import router as feed_router
from .openapi import environment_document
from .webhook_events import router as webhook_events_router

logger = logging.getLogger(__name__)


class JsonBodyParser(Parser):
    """Refuse bodies that are too large, not JSON by content type, or not JSON at all, each with its own code."""

    def parse_body(self, request: HttpRequest):
        if len(request.body) > settings.API_MAX_BODY_BYTES:
            raise ApiError(
                413, "payload_too_large", f"the request body is larger than {settings.API_MAX_BODY_BYTES} bytes"
            )
        if request.content_type != "application/json":
            raise ApiError(415, "unsupported_media_type", "send the body as Content-Type: application/json")
        try:
            return inputs.loads(request.body)
        except inputs.JsonRefused as error:
            raise ApiError(400, "malformed_json", f"the body is refused: {error}") from None


class BearerToken(HttpBearer):
    """RFC 6750 bearer tokens issued by /oauth/token."""

    def __call__(self, request: HttpRequest) -> AccessToken:
        return resolve_bearer(request.headers.get("Authorization", ""))

    def authenticate(self, request: HttpRequest, token: str) -> AccessToken:  # pragma: no cover - __call__ does it
        return resolve_bearer(f"Bearer {token}")


api = NinjaAPI(
    title="Integration Tools Data API",
    version="1",
    description="Read and write the records of one environment. Obtain a token at POST /oauth/token "
    "(OAuth 2.0 client credentials) and send it as `Authorization: Bearer <token>`.",
    urls_namespace="data_api",
    openapi_url="/openapi.json",
    docs_url=None,
    parser=JsonBodyParser(),
    auth=BearerToken(),
)
api.add_router("", feed_router)
api.add_router("", webhook_events_router)  # a webhook's numbered events and status, for the client it serves


# --- Schemas ------------------------------------------------------------------


def _iso_only(value: Any) -> Any:
    # pydantic reads a bare number as a Unix time; the document promises an ISO 8601 date-time.
    if isinstance(value, (int, float)) or (isinstance(value, str) and re.fullmatch(r"[\d.eE+-]*", value.strip())):
        raise ValueError("give an ISO 8601 date and time, such as 2026-11-20T08:00:00Z")
    return value


IsoDateTime = Annotated[datetime.datetime, BeforeValidator(_iso_only)]


class RecordOut(Schema):
    id: str = Field(description="UUID of the record")
    data_type: str
    external_id: str | None
    created_at: str = Field(description="ISO 8601, UTC")
    updated_at: str = Field(description="ISO 8601, UTC")
    fields: dict[str, Any]


class RecordPage(Schema):
    data: list[RecordOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    stream_position: str = Field(
        description="The environment's stream position when this page was read: keep the first page's, and after "
        "the last page read `changes?since=` it (or the events feed `after=` it) to have every later change"
    )


class RecordCreate(Schema):
    model_config = ConfigDict(extra="forbid")
    external_id: str | None = Field(None, max_length=255, description="Your system's id; unique per data type")
    fields: dict[str, Any]


class RecordPatch(Schema):
    model_config = ConfigDict(extra="forbid")
    external_id: str | None = Field(None, max_length=255, description="Give to change; null clears it")
    fields: dict[str, Any] = Field(default_factory=dict, description="Fields to change; null clears a field")


# --- Endpoints ------------------------------------------------------------------


@api.get("/{environment}/{data_type}/", response={200: RecordPage, **ERRORS}, summary="List records")
def list_records(
    request,
    environment: str,
    data_type: str,
    limit: int = Query(50, ge=1, le=settings.API_PAGE_SIZE_MAX),
    cursor: str | None = None,
    updated_since: IsoDateTime | None = Query(
        None,
        description="Only records updated at or after this. A write's time is taken when it starts, not when it "
        "commits, so this can skip a late commit: to stay in sync, use `stream_position` and `changes?since=`",
    ),
    external_id: str | None = None,
):
    """Records in (updated_at, id) order, with the stream position to read changes after (see `changes`)."""
    env = _authorize(request, environment, data_type, "read")
    position = stream.current_position(env)  # before the records are read: nothing after it is missed
    records = Record.objects.filter(environment=env, data_type=data_type)
    if updated_since is not None:
        records = records.filter(updated_at__gte=_in_utc(updated_since))
    if external_id is not None:
        records = records.filter(external_id=external_id)
    if cursor:
        after_time, after_id = _decode_cursor(cursor)
        records = records.filter(Q(updated_at__gt=after_time) | Q(updated_at=after_time, id__gt=after_id))
    page = list(records.order_by("updated_at", "id")[: limit + 1])
    next_cursor = _encode_cursor(page[limit - 1]) if len(page) > limit else None
    return {
        "data": [record_representation(r) for r in page[:limit]],
        "next_cursor": next_cursor,
        "stream_position": str(position),
    }


@api.post("/{environment}/{data_type}/", response={201: RecordOut, **ERRORS}, summary="Create a record")
def create(request, environment: str, data_type: str, body: RecordCreate):
    env = _authorize(request, environment, data_type, "write")
    try:
        record = create_record(env, data_type, body.fields, external_id=body.external_id)
    except RecordInvalid as error:
        raise _invalid(error) from None
    except DuplicateExternalId as error:
        raise ApiError(409, "duplicate_external_id", str(error), {"external_id": error.external_id}) from None
    return Status(201, record_representation(record))


@api.get(
    "/{environment}/{data_type}/changes",
    response={200: ChangesPage, **ERRORS, 410: ERRORS[400]},
    summary="List the records changed after a position",
)
def changes(
    request,
    environment: str,
    data_type: str,
    since: str = Query(
        ...,
        description="A position: `stream_position` of a full listing, or a `next_since`",
        pattern=POSITION_PATTERN,
    ),
    limit: int = Query(50, ge=1, le=settings.API_PAGE_SIZE_MAX),
):
    """Each record changed after `since` once, at its latest change (position order); deleted ones as tombstones.
    Declared before the record routes so that `changes` is never read as a record id."""
    return changes_listing(request.auth, environment, data_type, since, limit)


@api.get("/{environment}/{data_type}/{record_id}", response={200: RecordOut, **ERRORS}, summary="Read a record")
def read(request, environment: str, data_type: str, record_id: str):
    env = _authorize(request, environment, data_type, "read")
    return record_representation(_record(env, data_type, record_id))


@api.patch("/{environment}/{data_type}/{record_id}", response={200: RecordOut, **ERRORS}, summary="Update a record")
def patch(request, environment: str, data_type: str, record_id: str, body: RecordPatch):
    env = _authorize(request, environment, data_type, "write")
    record = _record(env, data_type, record_id)
    external_id = body.external_id if "external_id" in body.model_fields_set else ...
    try:
        update_record(record, body.fields, external_id=external_id)
    except RecordInvalid as error:
        raise _invalid(error) from None
    except DuplicateExternalId as error:
        raise ApiError(409, "duplicate_external_id", str(error), {"external_id": error.external_id}) from None
    return record_representation(record)


@api.delete("/{environment}/{data_type}/{record_id}", response={204: None, **ERRORS}, summary="Delete a record")
def delete(request, environment: str, data_type: str, record_id: str):
    env = _authorize(request, environment, data_type, "write")
    delete_record(_record(env, data_type, record_id))
    return Status(204, None)


@api.get("/{environment}/openapi.json", include_in_schema=False)
def environment_openapi(request, environment: str):
    """This environment's document, typed from its published schema, for the token's scopes."""
    token: AccessToken = request.auth
    if token.environment.slug != environment:
        raise ApiError(404, "not_found", f"no environment “{environment}” for this token")
    return JsonResponse(environment_document(_global_document(), token.environment, token.scopes))


@functools.cache
def _global_document() -> dict:
    # As served (status codes as strings), not as ninja builds it.
    return json.loads(json.dumps(api.get_openapi_schema()))


# --- Helpers ------------------------------------------------------------------


def _authorize(request, slug: str, data_type: str, action: str) -> Environment:
    """The token's environment, if it is the one asked for and the token holds the scope; else 404 or 403."""
    token: AccessToken = request.auth
    if token.environment.slug != slug:
        # A token never learns whether another environment exists.
        raise ApiError(404, "not_found", f"no environment “{slug}” for this token")
    environment = token.environment  # loaded with its published schema by resolve_bearer
    if data_type not in environment.data_types:
        raise ApiError(404, "unknown_data_type", f"“{data_type}” is not a data type of {slug}")
    scope = f"{data_type}:{action}"
    if scope not in token.scopes:
        raise BearerError("insufficient_scope", f"this request needs the scope {scope}", status=403, scope=scope)
    return environment


def _record(environment: Environment, data_type: str, record_id: str) -> Record:
    try:
        key = uuid.UUID(record_id)
    except ValueError:
        raise ApiError(404, "not_found", f"no {data_type} record “{record_id}”") from None
    record = Record.objects.filter(environment=environment, data_type=data_type, pk=key).first()
    if record is None:
        raise ApiError(404, "not_found", f"no {data_type} record “{record_id}”")
    record.environment = environment
    return record


def _invalid(error: RecordInvalid) -> ApiError:
    details = {("record" if field == "" else field): message for field, message in error.errors.items()}
    return ApiError(400, "invalid_fields", "some fields are not valid for the published schema", details)


def _in_utc(moment: datetime.datetime) -> datetime.datetime:
    """`moment` in UTC (naive means UTC). Offsets PostgreSQL refuses (beyond ±15:59) are resolved here,
    and a moment that leaves the calendar in UTC becomes its first or last instant."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    try:
        return moment.astimezone(datetime.UTC)
    except OverflowError:
        edge = datetime.datetime.min if moment.year == 1 else datetime.datetime.max
        return edge.replace(tzinfo=datetime.UTC)


def _encode_cursor(record: Record) -> str:
    raw = json.dumps([record.updated_at.isoformat(), str(record.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, key = inputs.loads(raw)
        return datetime.datetime.fromisoformat(moment), uuid.UUID(key)
    except (ValueError, TypeError) as error:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API returned") from error


# --- Error responses ------------------------------------------------------------


def _error(request, status: int, code: str, message: str, details: Any = None, headers: dict | None = None):
    response = api.create_response(
        request, {"error": {"code": code, "message": message, "details": details}}, status=status
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ApiError)
def _api_error(request, error: ApiError):
    return _error(request, error.status, error.code, error.message, error.details)


@api.exception_handler(BearerError)
def _bearer_error(request, error: BearerError):
    code = error.error or "unauthorized"
    return _error(
        request, error.status, code, error.description, headers={"WWW-Authenticate": error.www_authenticate()}
    )


@api.exception_handler(ValidationError)
def _validation_error(request, error: ValidationError):
    details = [
        {"location": ".".join(str(part) for part in item.get("loc", ())), "message": item.get("msg", "")}
        for item in error.errors
    ]
    return _error(request, 400, "invalid_request", "the request does not match the API's schema", details)


@api.exception_handler(HttpError)
def _http_error(request, error: HttpError):
    if isinstance(error.__cause__, ApiError):
        return _api_error(request, error.__cause__)
    return _error(request, error.status_code, "http_error", str(error))


@api.exception_handler(Http404)
def _not_found(request, error: Http404):
    return _error(request, 404, "not_found", "no such resource")


@api.exception_handler(Exception)
def _unexpected(request, error: Exception):
    logger.exception("Data API error on %s %s", request.method, request.path)
    return _error(request, 500, "internal_error", "something went wrong on our side; it has been logged")
