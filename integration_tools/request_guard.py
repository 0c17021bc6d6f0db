"""Refuse requests no view can use, before any view runs, in the caller's own error format.

A NUL character in the path, a query parameter or a form field cannot be
stored in PostgreSQL and would otherwise surface as a 500 wherever it is first
used in a query. Django's own request limits (DATA_UPLOAD_MAX_MEMORY_SIZE,
DATA_UPLOAD_MAX_NUMBER_FIELDS) raise on first access to the body; left to
Django they answer its technical 400 page. Here each becomes one clear
answer: the Data API's JSON error, RFC 6749 JSON (with no-store) under
/oauth/, and the portal's error page elsewhere.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

NUL = "\x00"


class RequestGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        refusal = refusal_of(request)
        if refusal is not None:
            status, message = refusal
            return _refuse(request, status, message)
        return self.get_response(request)


def refusal_of(request: HttpRequest) -> tuple[int, str] | None:
    """(status, sentence) when the request cannot be handled, else None."""
    if NUL in request.path:
        return 400, "The address contains a NUL character (%00)."
    try:
        if request.path.startswith(("/api/", "/oauth/")):
            request.body  # noqa: B018 - reading it is what enforces the size limit
        for source, values in (("query parameter", request.GET), ("form field", request.POST)):
            for key, items in values.lists():
                if NUL in key or any(NUL in item for item in items):
                    return 400, f"The {source} “{key.replace(NUL, '')}” contains a NUL character (%00)."
    except RequestDataTooBig:
        return 413, "The request body is too large."
    except TooManyFieldsSent:
        return 400, "The request has too many parameters."
    return None


def _refuse(request: HttpRequest, status: int, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        code = "payload_too_large" if status == 413 else "bad_request"
        return JsonResponse({"error": {"code": code, "message": message, "details": None}}, status=status)
    if request.path.startswith("/oauth/"):
        response = JsonResponse({"error": "invalid_request", "error_description": message}, status=400)
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response
    return render(request, "errors/400.html", {"message": message}, status=status)
