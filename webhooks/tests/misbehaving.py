"""Receivers on 127.0.0.1 that misbehave as an attacker's or a broken endpoint would, for tests and benchmarks.

Each is a raw socket server (no HTTP library would answer this badly) that
runs until the `with` block ends:

- `hang`: reads the request, never answers.
- `drip`: sends a status line, then one header byte every `interval` seconds, forever.
- `endless`: answers 200 at once with a chunked body that never ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Misbehaving:
    def __init__(self, behaviour: str, *, interval: float = 0.5):
        if behaviour not in ("hang", "drip", "endless"):
            raise ValueError(behaviour)
        self.behaviour = behaviour
        self.interval = interval
        self.connections = 0
        self._count_lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hooks"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Misbehaving:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._count_lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(1)
            with contextlib.suppress(TimeoutError):
                conn.recv(65536)
            if self.behaviour == "drip":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self._stop.wait(self.interval):
                    conn.sendall(b"X")
            elif self.behaviour == "endless":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
                deadline = time.monotonic() + 60
                while not self._stop.is_set() and time.monotonic() < deadline:
                    conn.sendall(chunk)
            else:
                # Hang until the sender gives up (closes) or the receiver stops.
                conn.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        if not conn.recv(1):
                            return
                    except TimeoutError:
                        continue
