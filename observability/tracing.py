"""OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: a Data API write, its fan-out, the
delivery task and the POST in one trace (the `traceparent` goes to the receiver: portal/tracing.py).

`setup` installs the SDK's exporter (OTLP over HTTP, to the endpoint and with the OTEL_* variables the SDK
reads); requests get a server span (TracingMiddleware); a task published while a span is current carries it
in its message headers, and the worker continues it (Celery signals).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.http import HttpRequest, HttpResponse
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind

from portal.tracing import TRACER

_spans: dict[str, tuple[Any, object]] = {}
_lock = threading.Lock()


def enabled() -> bool:
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup(exporter: Any = None) -> None:
    """Install a tracer provider exporting over OTLP/HTTP (or to `exporter`, for tests), once per process."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor: Any = BatchSpanProcessor(OTLPSpanExporter())
    else:
        processor = SimpleSpanProcessor(exporter)
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "integration-tools")})
    )
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)


class TracingMiddleware:
    """A server span per request (continuing a caller's `traceparent`), named by its route, not its path."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            return self.get_response(request)
        parent = propagate.extract(dict(request.headers))
        with TRACER.start_as_current_span(f"HTTP {request.method}", context=parent, kind=SpanKind.SERVER) as span:
            response = self.get_response(request)
            route = getattr(request.resolver_match, "route", "") if request.resolver_match else ""
            span.update_name(f"HTTP {request.method} {route or 'unmatched'}")
            span.set_attribute("http.response.status_code", response.status_code)
            return response


def fan_out(event: Any) -> None:
    """The event listener (settings.EVENT_LISTENERS): the engine's fan-out, in a span of the write's trace."""
    from webhooks.delivery import fanout

    with TRACER.start_as_current_span("webhooks.fan_out", attributes={"event.type": getattr(event, "type", "")}):
        fanout.fan_out(event)


@before_task_publish.connect
def carry_trace(headers: dict | None = None, **kwargs: Any) -> None:
    """Put the current span's `traceparent` in the task message, so the worker's span joins the trace."""
    if headers is not None and trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


@task_prerun.connect
def continue_trace(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    request = getattr(task, "request", None)
    if not enabled() or request is None or task_id is None:
        return
    carrier = {key: getattr(request, key) for key in ("traceparent", "tracestate") if getattr(request, key, None)}
    span = TRACER.start_span(f"celery {task.name}", context=propagate.extract(carrier), kind=SpanKind.CONSUMER)
    token = context.attach(trace.set_span_in_context(span))
    with _lock:
        _spans[task_id] = (span, token)


@task_postrun.connect
def end_trace(task_id: str | None = None, **kwargs: Any) -> None:
    with _lock:
        entry = _spans.pop(task_id or "", None)
    if entry is not None:
        span, token = entry
        context.detach(token)  # type: ignore[arg-type]
        span.end()
