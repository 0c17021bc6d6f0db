"""Trace spans through the OpenTelemetry API: no-ops until observability/tracing.py installs an exporter
(OTEL_EXPORTER_OTLP_ENDPOINT set). The delivery engine and the apps use only this; none of them needs the SDK."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

TRACER = trace.get_tracer("integration_tools")


def start_post(webhook_id: int, delivery_id: int) -> Span:
    """A client span for one attempt's POST, to end with `end_post`; `headers_for` gives its `traceparent`.
    Nothing at all (an invalid span, no header) unless tracing is on."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return trace.INVALID_SPAN
    return TRACER.start_span(
        "webhook POST",
        kind=SpanKind.CLIENT,
        attributes={"webhook.id": webhook_id, "webhook.delivery_id": delivery_id, "http.request.method": "POST"},
    )


def headers_for(span: Span) -> dict[str, str]:
    """The `traceparent` (and `tracestate`) a receiver that traces joins the trace with; {} when not tracing."""
    if not span.get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def end_post(span: Span, result: Any) -> None:
    """End an attempt's span with its outcome (`result` an outbound.Response, or None when it was not sent)."""
    if result is not None:
        if getattr(result, "status_code", None) is not None:
            span.set_attribute("http.response.status_code", result.status_code)
        if not getattr(result, "succeeded", False):
            span.set_status(Status(StatusCode.ERROR, getattr(result, "error", "") or "not accepted"))
    span.end()
