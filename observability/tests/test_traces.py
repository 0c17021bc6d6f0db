"""Traces: a Data API write, its fan-out, the worker's task and the POST in one trace, the receiver joining it.

The web side runs in this process (the SDK's in-memory exporter); the worker is a real process exporting over
OTLP/HTTP to a collector stand-in on loopback.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import wait_for
from credentials.oauth import issue_token
from credentials.tests.factories import make_client, make_credential
from environments.tests.factories import make_environment
from observability import tracing
from webhooks.tests.factories import make_webhook
from webhooks.tests.receiver import Receiver

_memory = InMemorySpanExporter()


class Collector:
    """An OTLP/HTTP endpoint on loopback keeping (trace id, span name) of every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans += [(span.trace_id.hex(), span.name) for span in scope.spans]
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector(monkeypatch):
    stand_in = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", stand_in.url)
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # once per process: the SDK's rule
        tracing.setup(exporter=_memory)
    _memory.clear()
    yield stand_in
    stand_in.server.shutdown()


def test_a_write_its_fan_out_the_task_and_the_post_are_one_trace(collector, start_worker, client, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    start_worker(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_BSP_SCHEDULE_DELAY="100")
    environment = make_environment("clinic")
    api_client = make_client(environment)
    credential, _ = make_credential(api_client)
    token = issue_token(api_client, credential, None, ip="127.0.0.1").access_token
    with Receiver() as receiver:
        make_webhook(environment, receiver.url)
        written = client.post(
            "/api/v1/clinic/patients/",
            {"fields": {"first_name": "Ada", "last_name": "Lovelace"}},
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert written.status_code == 201, written.content
        wait_for(lambda: receiver.requests, timeout=30, message="the delivery")
        traceparent = receiver.requests[0].headers["traceparent"]
    trace_id = traceparent.split("-")[1]
    here = {span.name for span in _memory.get_finished_spans() if format(span.context.trace_id, "032x") == trace_id}
    print(sorted(here))
    assert "webhooks.fan_out" in here and any(name.startswith("HTTP POST api/v1/") for name in here), here

    def worker_spans() -> set[str]:
        return {name for each_trace, name in collector.spans if each_trace == trace_id}

    wait_for(
        lambda: {"celery webhooks.deliver", "webhook POST"} <= worker_spans(), timeout=20, message="the worker's spans"
    )
