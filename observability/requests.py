"""Data API requests by status: counted in-process (there is no row per request to count).

prometheus_client's multiprocess mode keeps the figure right across gunicorn's processes: with
PROMETHEUS_MULTIPROC_DIR set (an empty directory, before the processes start) each process writes its
counts to a file there and /metrics adds them up; without it, the counts are this process's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.multiprocess import MultiProcessCollector

API_PREFIX = "/api/"
# A `_created` series per counter is noise for a scraper that reads rates.
disable_created_metrics()

_local = CollectorRegistry(auto_describe=True)
DATA_API_REQUESTS = Counter(
    "integration_dataapi_requests", "Data API requests answered, by status code.", ["status"], registry=_local
)


def registry() -> CollectorRegistry:
    """The registry holding the request counts: every process's (multiprocess mode) or this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shared = CollectorRegistry()
        MultiProcessCollector(shared)
        return shared
    return _local


class DataApiRequestsMiddleware:
    """Counts every Data API answer by its status (one in-memory or mmap increment: nothing on the database)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX):
            DATA_API_REQUESTS.labels(str(response.status_code)).inc()
        return response
