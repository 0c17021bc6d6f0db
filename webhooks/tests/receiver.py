"""A real HTTP receiver on 127.0.0.1 for tests and benchmarks: records requests, answers as told."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when the body was read
    peer: str = ""  # the sender's address

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver:
    """Start with `with Receiver() as receiver:`; `receiver.url` is where to send.

    `answer(...)` queues answers used in order; when none is queued the
    receiver answers `default` (200 "ok").
    """

    def __init__(self, default: Answer | None = None, judge=None, host: str = "127.0.0.1"):
        self.requests: list[Received] = []
        self.default = default or Answer()
        # judge(body, headers) -> Answer: a receiver with its own logic (e.g. one that verifies signatures).
        self.judge = judge
        self._answers: deque[Answer] = deque()
        # Requests being answered now, and the most there ever were at once (a sender's concurrency).
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in one write, with Nagle off: otherwise delayed ACKs
            # add ~40 ms to every keep-alive request and the receiver, not the sender, is measured.
            wbufsize = -1
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                    answer = receiver._answers.popleft() if receiver._answers else receiver.default
                    if receiver.judge is not None:
                        answer = receiver.judge(body, dict(self.headers))
                    receiver.requests.append(
                        Received(self.path, dict(self.headers), body, time.time(), self.client_address[0])
                    )
                try:
                    if answer.delay:
                        time.sleep(answer.delay)
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    self.wfile.flush()
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, status: int = 200, *, headers: dict | None = None, body: bytes = b"", delay: float = 0.0):
        with self._lock:
            self._answers.append(Answer(status, headers or {}, body, delay))
        return self

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
