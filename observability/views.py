"""GET /metrics: Prometheus' text format, for a scraper with the token or from an allowed network."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from . import access, requests
from .exposition import scrape


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The figures now: read from the database at this scrape, plus the Data API request counts."""
    try:
        access.check(request)
    except access.Refused as refused:
        response = HttpResponse(refused.reason + "\n", status=refused.status, content_type="text/plain")
        if refused.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = scrape().encode() + generate_latest(requests.registry())
    # The text format 0.0.4: what every Prometheus 2.x reads (Debian's included).
    return HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
