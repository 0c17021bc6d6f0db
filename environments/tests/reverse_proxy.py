"""A real reverse proxy on loopback: Debian's nginx in front of the portal served by gunicorn.

Every address here is a real peer. nginx connects to the portal from
`PROXY_ADDRESS` (127.0.0.2, `proxy_bind`), which the portal is told to trust
(`TRUSTED_PROXIES=127.0.0.2/32`), and appends the address of its own peer to
X-Forwarded-For. The test's clients connect to nginx from addresses of their
own on the loopback network (127.0.0.3, 127.0.0.4, ::1), so "the client" is
who nginx saw, not whatever a test writes in a header. A request straight to
gunicorn comes from 127.0.0.1, which is not trusted: that is the untrusted
peer a spoofed X-Forwarded-For must not fool.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from conftest import BASE_DIR, free_port, subprocess_env, wait_for

PROXY_ADDRESS = "127.0.0.2"


def nginx_path() -> str:
    """Debian's nginx; a missing one fails the test (scripts/system-packages installs it), it never skips."""
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        pytest.fail("nginx is not installed: run scripts/system-packages (Debian's nginx package)")
    return path


def _answers(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def gunicorn(tmp_path: Path, **env: str) -> Iterator[int]:
    """The portal under gunicorn (as docker-compose.yml runs it) on a free loopback port, against the test database."""
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "integration_tools.wsgi"]
        + ["--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=BASE_DIR,
        env=subprocess_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: process.poll() is not None or _answers("127.0.0.1", port), timeout=30, message="gunicorn")
        assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
        yield port
    finally:
        _stop(process)
        log.close()


@contextlib.contextmanager
def nginx(tmp_path: Path, upstream_port: int) -> Iterator[int]:
    """nginx, not daemonised, with every file it writes under tmp_path, proxying a free port to the upstream."""
    root = tmp_path / "nginx"
    root.mkdir()
    port = free_port()
    # As root, nginx's workers would switch to `nobody`, who cannot reach a private tmp_path.
    user = "user root;" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(
        f"""
        daemon off;
        {user}
        worker_processes 1;
        pid {root}/nginx.pid;
        error_log {root}/error.log info;
        events {{ worker_connections 128; }}
        http {{
            access_log {root}/access.log;
            client_body_temp_path {root}/client_body;
            proxy_temp_path {root}/proxy;
            fastcgi_temp_path {root}/fastcgi;
            uwsgi_temp_path {root}/uwsgi;
            scgi_temp_path {root}/scgi;
            server {{
                listen 127.0.0.1:{port};
                listen [::1]:{port};
                location / {{
                    proxy_pass http://127.0.0.1:{upstream_port};
                    proxy_bind {PROXY_ADDRESS};
                    proxy_set_header Host $host;
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_set_header X-Forwarded-Proto $scheme;
                }}
            }}
        }}
        """
    )
    process = subprocess.Popen(
        [nginx_path(), "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: process.poll() is not None or _answers("127.0.0.1", port), timeout=15, message="nginx")
        assert process.poll() is None, (root / "error.log").read_text()
        yield port
    finally:
        _stop(process)


class _FromAddress(HTTPAdapter):
    """Connects from a given source address, so a test can be several clients on the loopback network."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Client(requests.Session):
    """A browser-like session (cookies kept) at `address`, talking to `base_url`; paths are relative to it."""

    def __init__(self, address: str, base_url: str):
        super().__init__()
        self.address, self.base_url = address, base_url
        self.mount("http://", _FromAddress(address))

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 15)
        kwargs.setdefault("allow_redirects", False)
        return super().request(method, self.base_url + url, *args, **kwargs)

    def post_form(self, path: str, data: dict, headers: dict | None = None) -> requests.Response:
        """POST a form; a CSRF token is added when the session has one (after any GET of a portal page)."""
        if "csrftoken" in self.cookies:
            data = {"csrfmiddlewaretoken": self.cookies["csrftoken"], **data}
        return self.post(path, data=data, headers=headers)

    def log_in(self, username: str, password: str) -> None:
        self.get("/login/")
        answer = self.post_form("/login/", {"username": username, "password": password})
        assert answer.status_code == 302, answer.text


@dataclass
class Portal:
    """The portal behind nginx: `via_proxy(address)` is a client nginx sees at `address`; `direct()` skips nginx."""

    proxy_port: int
    portal_port: int

    def via_proxy(self, address: str) -> Client:
        host = "[::1]" if ":" in address else "127.0.0.1"
        return Client(address, f"http://{host}:{self.proxy_port}")

    def direct(self) -> Client:
        return Client("127.0.0.1", f"http://127.0.0.1:{self.portal_port}")


@contextlib.contextmanager
def portal_behind_proxy(tmp_path: Path, **settings: str) -> Iterator[Portal]:
    """gunicorn trusting only nginx's address (and given `settings` as its environment), and nginx in front."""
    with (
        gunicorn(tmp_path, TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32", **settings) as portal_port,
        nginx(tmp_path, portal_port) as port,
    ):
        yield Portal(proxy_port=port, portal_port=portal_port)
