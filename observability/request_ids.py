"""Each request's id and environment, for its log lines (portal/log_context.py) and its `X-Request-ID` header."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from portal import log_context

# An id a proxy in front already gave the request is kept when it looks like one; anything else is replaced.
GIVEN_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
ENVIRONMENT_IN_PATH = re.compile(r"^/(?:e|api/v1)/([a-z0-9][a-z0-9-]*)/")


class RequestLogContextMiddleware:
    """Binds `request_id` (the proxy's X-Request-ID, else a new one) and `environment` (from the path) for every
    line logged while the request is handled, and answers the id in X-Request-ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request_id = given if GIVEN_ID.match(given) else uuid.uuid4().hex
        environment = ENVIRONMENT_IN_PATH.match(request.path)
        # Set, not scoped: Django logs a 4xx or 5xx answer after the middleware has returned it. The next request
        # on this thread starts afresh.
        log_context.start(request_id=request_id, environment=environment.group(1) if environment else None)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
